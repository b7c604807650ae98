"""Preprocessing: raw RAVDESS clips -> the compact cache (one shard per actor), resumable.

    summary = preprocess(data_dir, cache_dir)            # index a folder, cache every usable clip
    with Preprocessor(cache_dir) as run:                 # the engine, fed actor by actor (the download)
        run.process(clips, root, origin={actor: {...}})
        summary = run.finish(index)

`fer_lib.preprocess` is the command around it, `fer_lib.data.download` feeds it while it downloads,
and the cache's format is `fer_lib.data.cache`'s.

Per clip (`fer_lib.data.video`, `fer_lib.data.faces`): one window of `input.clip_seconds` placed on
the speech, shared by both modalities; mono 16 kHz audio (`input.num_samples`, zero-padded,
`audio_length` valid samples); T = `input.num_frames` frames uniformly spaced in the window,
MTCNN-tracked face crops `image_size`^2 and the 5 MTCNN landmarks in crop pixels.

Rules:
- One process at a time per cache: the run holds the cache folder (`fer_lib.locking`); a second
  run on the same cache stops at once with one line naming the holder.
- Per actor: each finished clip is staged on the runtime's local disk (`cache.Staging`); when the
  actor's last clip is done, its shard is written to the cache in one atomic step. Killed and run
  again, nothing finished is redone: staged clips are picked up, and what an interrupted run left
  that cannot be used (temporary files, staging of other parameters) is deleted, under the hold.
- Freshness (`cache.source_key`): a clip whose source is unchanged since it was cached is skipped,
  a changed one is processed again; so is a clip recorded as a problem, once its source changes
  (`retry_problems=True` / `--retry_problems` retries every problem). A rerun with nothing new
  takes seconds.
- Faults of a clip (`ClipError`: no face, no audio, truncated ..., or anything unexpected while
  decoding it) are recorded as problems and the other clips go on. Faults of the machine (a full
  disk, an I/O error, no permission, a vanished Drive mount: `fer_lib.errors.environment_fault`)
  stop the run with one line (`MachineFault`) and are recorded against no clip; finished clips
  stay staged or cached.
- A cache_dir built with other parameters raises `CacheMismatchError` naming the changed fields;
  use a new cache_dir or `overwrite=True` / `--overwrite`. A cache of an older format is rebuilt.
- Faceless clips (no face on any frame) are not cached; they are problems of kind `faceless`.
  Frames without a face inside a clip are cached (`face_detected` False there).
- `workers` (default: one per core) spawned processes each build their own MTCNN on `device`
  (default `auto`: the GPU when there is one); torch uses one thread per worker, the video decoder
  cores / workers. A worker costs a few seconds to start, so a run uses at most one worker per
  `CLIPS_PER_WORKER` clips to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm.auto import tqdm

from fer_lib import devices, locking
from fer_lib.config import PreprocessConfig, from_dict
from fer_lib.data import cache
from fer_lib.data.index import DataIndex, Problem, build_index, format_report, problem_counts, save_report
from fer_lib.data.ravdess import RavdessClip
from fer_lib.errors import MachineFault, environment_fault

# MTCNN on 320 px frames gains little from more threads, and OpenMP threads collapse (10x slower
# measured) when the CPU is shared; parallelism comes from `workers` instead.
TORCH_THREADS = 1
CLIPS_PER_WORKER = 4
RESUME_HINT = "fix it, then run the same command again: finished clips are kept"


def default_workers() -> int:
    """One preprocessing process per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------
# One clip
# --------------------------------------------------------------------------------------------


def track_clip(path: str | Path, config: PreprocessConfig, tracker, threads: int = 0):
    """Decode the window of one clip and track its face: (DecodedClip, frame source, FaceTrack)."""
    from fer_lib.data.faces import YuvFrames
    from fer_lib.data.video import decode_clip

    clip = decode_clip(path, config.input, threads=threads)
    source = YuvFrames(clip.frames)
    return clip, source, tracker.track(source)


def process_clip(path: str | Path, config: PreprocessConfig, tracker, threads: int = 0) -> tuple[dict, dict]:
    """Decode, window, track, crop one clip. Returns (the arrays of its cache entry, info).

    Raises `fer_lib.data.video.ClipError` (kinds of the index, plus `faceless`).
    """
    from fer_lib.data.faces import crop_faces
    from fer_lib.data.ravdess import parse_name
    from fer_lib.data.video import ClipError

    name = parse_name(path)
    clip, source, track = track_clip(path, config, tracker, threads)
    if not track.found:
        raise ClipError("faceless", f"MTCNN finds no face in any of the {len(source)} frames")
    crops, marks = crop_faces(source, track, config.input.image_size, config.face_margin)
    arrays = dict(
        audio=clip.audio.astype(np.float32), audio_length=np.int64(clip.audio_length),
        frames=crops, landmarks=marks.astype(np.float32),
        label=np.int64(name.label), actor=np.int64(name.actor),
        face_detected=track.detected, window_start=np.float64(clip.window_start),
        frame_times=clip.frame_times.astype(np.float64), duration=np.float64(clip.duration),
    )
    info = dict(detected_frames=int(track.detected.sum()), window_start=clip.window_start, speech=clip.speech)
    return arrays, info


@dataclasses.dataclass
class ClipInspection:
    """What preprocessing does to one clip, for a person to look at (notebook 01)."""

    frames: list  # [T] RGB uint8 whole frames, downscaled to `max_side`
    boxes: np.ndarray  # [T, 4] face boxes in those frames' pixels
    landmarks: np.ndarray  # [T, 5, 2] in those frames' pixels
    detected: np.ndarray  # bool [T]
    crops: np.ndarray  # uint8 [T, 3, S, S]: what the cache stores
    crop_landmarks: np.ndarray  # [T, 5, 2] crop pixels
    audio: np.ndarray  # float32 window at `sample_rate`
    sample_rate: int
    window_start: float


def inspect_clip(path: str | Path, config: Optional[PreprocessConfig] = None, max_side: int = 480) -> ClipInspection:
    """Run one clip through exactly the preprocessing path and keep the intermediate results."""
    from fer_lib.data.faces import FaceTracker, crop_faces, small_size

    config = config or PreprocessConfig()
    clip, source, track = track_clip(path, config, FaceTracker(config))
    crops, marks = crop_faces(source, track, config.input.image_size, config.face_margin)
    scale = small_size(source.width, source.height, max_side)[0] / source.width
    return ClipInspection(
        frames=[source.small(i, max_side) for i in range(len(source))], boxes=track.boxes * scale,
        landmarks=track.landmarks * scale, detected=track.detected, crops=crops, crop_landmarks=marks,
        audio=clip.audio[: clip.audio_length], sample_rate=config.input.sample_rate, window_start=clip.window_start,
    )


def inspect_cached(clip_path: str | Path) -> ClipInspection:
    """The same view of a cached clip, for when its source is gone (downloaded clips are deleted once
    cached): the face crops stand in for the whole frames, the box is the whole crop."""
    entry = cache.read_entry(clip_path)
    crops = entry["frames"]  # (T, 3, S, S)
    side = crops.shape[-1]
    return ClipInspection(
        frames=list(crops.transpose(0, 2, 3, 1)), boxes=np.tile([0.0, 0.0, side, side], (len(crops), 1)),
        landmarks=entry["landmarks"], detected=entry["face_detected"], crops=crops, crop_landmarks=entry["landmarks"],
        audio=entry["audio"][: int(entry["audio_length"])],
        sample_rate=cache.manifest_config(cache.cache_dir_of(clip_path)).input.sample_rate,
        window_start=float(entry["window_start"]),
    )


# Worker state (one per process; spawn-safe: everything below is top-level)
_STATE: dict = {}


def _worker_init(config_dict: dict, torch_threads: int, decode_threads: int, device: str, cache_dir: str,
                 staging: cache.Staging) -> None:
    import torch

    from fer_lib.data.faces import FaceTracker

    if torch_threads:
        torch.set_num_threads(torch_threads)
    config = from_dict(PreprocessConfig, config_dict)
    _STATE.update(config=config, tracker=FaceTracker(config, device=device).warmup(), threads=decode_threads,
                  cache_dir=cache_dir, staging=staging)


def _worker_exit(torch_threads: int) -> None:
    """Undo `_worker_init` in this process (one worker, in-process): a notebook's torch keeps its threads."""
    import torch

    torch.set_num_threads(torch_threads)
    _STATE.clear()


def _worker_run(job: tuple[str, str, str]) -> dict:
    """job = (source path, stem, display path) -> result dict. Stages the clip or records its problem;
    raises only a fault of the machine (as a plain OSError, which crosses process boundaries)."""
    from fer_lib.data.video import ClipError

    path, stem, shown = job
    start = time.perf_counter()
    result = {"stem": stem, "path": shown}
    try:
        key = cache.source_key(path)
        arrays, info = process_clip(path, _STATE["config"], _STATE["tracker"], _STATE["threads"])
        _STATE["staging"].put(stem, cache.encode_entry(arrays, key))
        cache.clear_problem(_STATE["cache_dir"], stem)  # an earlier failure, now fixed
        result.update(status="ok", detected_frames=info["detected_frames"])
    except Exception as exc:  # a fault of this clip (or a bug on an unexpected file): report it, go on
        fault = environment_fault(exc)
        if fault is not None:
            raise OSError(fault.errno, fault.strerror, fault.filename) from None
        if isinstance(exc, ClipError):
            result.update(status="problem", kind=exc.kind, reason=exc.message)
        else:
            result.update(status="problem", kind="error", reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        cache.record_problem(_STATE["cache_dir"], stem, path, {k: result[k] for k in ("path", "kind", "reason")})
    result["seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _ActorPlan:
    actor: int
    keep: set[str]  # clips of the current shard that stay (fresh, or whose source is absent)
    todo: int  # clips to process in this call
    write: bool  # the shard must be (re)written
    origin: Optional[dict]


class Preprocessor:
    """Holds a cache for preprocessing and turns clips into shards (module docstring), actor by actor.

    Use as a context manager: entering holds the cache (`FolderInUseError` when another process
    does), prepares its manifest and its staging folder; leaving stops the workers and lets go.
    `process(clips, root)` may be called many times (the download calls it once per actor).
    """

    def __init__(self, cache_dir: str | Path, config: Optional[PreprocessConfig] = None,
                 workers: Optional[int] = None, device: str = "auto", staging_dir: Optional[str | Path] = None,
                 overwrite: bool = False, progress: bool = True, retry_problems: bool = False):
        from fer_lib.paths import default_staging

        self.cache_dir = Path(cache_dir).expanduser()
        self.config = config or PreprocessConfig()
        self.workers = workers or default_workers()
        self.device = str(devices.resolve(None if device == "auto" else device))  # DeviceError now, not in a worker
        self.staging_root = Path(staging_dir) if staging_dir is not None else default_staging(self.cache_dir)
        self.overwrite, self.progress, self.retry_problems = overwrite, progress, retry_problems
        self.results: list[dict] = []
        self.known: list[Problem] = []
        self.already = self.resumed = 0
        self.start = time.perf_counter()
        self._stack = contextlib.ExitStack()
        self._workers: Optional[int] = None  # processes, decided on the first clips to do
        self._pool = None
        self.bar = None

    # holding the cache -----------------------------------------------------------------------
    def __enter__(self) -> "Preprocessor":
        with self._stack as stack:
            stack.enter_context(locking.exclusive(self.cache_dir, "preprocessing"))
            self._guard(lambda: self._open())
            self._stack = stack.pop_all()
        return self

    def _open(self) -> None:
        self.manifest = cache.prepare(self.cache_dir, self.config, overwrite=self.overwrite)
        cache.remove_stale_temporaries(self.cache_dir)
        self.staging = cache.Staging(self.staging_root, self.cache_dir, self.manifest["hash"]).open()
        self._stack.callback(self.staging.close)
        self.bar = tqdm(total=0, desc="preprocess", unit="clip", disable=not self.progress)
        self._stack.callback(self.bar.close)

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _guard(self, work):
        """Run `work()`; a fault of the machine becomes one MachineFault line."""
        try:
            return work()
        except Exception as exc:
            fault = environment_fault(exc)
            if fault is None:
                raise
            raise MachineFault("preprocessing", fault, RESUME_HINT) from exc

    # the work --------------------------------------------------------------------------------
    def process(self, clips: list[RavdessClip], root: Optional[Path] = None,
                origin: Optional[dict[int, dict]] = None, later: int = 0) -> None:
        """Cache `clips` (found under `root`, for display); `origin`: actor -> where its clips came from;
        `later`: about how many clips later calls will bring (the bar's total: these jobs plus those)."""
        self._guard(lambda: self._process(clips, root, origin or {}, later))

    def _process(self, clips: list[RavdessClip], root: Optional[Path], origin: dict[int, dict], later: int) -> None:
        jobs, plans = [], {}
        for actor, group in itertools.groupby(sorted(clips, key=lambda c: (c.actor, c.stem)), key=lambda c: c.actor):
            plan, actor_jobs = self._plan(actor, list(group), root, origin.get(actor))
            plans[actor] = plan
            jobs += actor_jobs
        for plan in plans.values():
            if plan.write and not plan.todo:
                self._finish_actor(plan)
        self.bar.total = self.bar.n + len(jobs) + later  # the clips to do, not an estimate: the bar ends at 100%
        self.bar.refresh()
        if not jobs:
            return
        for result in self._run(jobs):
            self.results.append(result)
            self.bar.update(1)
            problems = sum(r["status"] != "ok" for r in self.results)
            if problems:
                self.bar.set_postfix(problems=problems)
            plan = plans[int(result["stem"][-2:])]
            plan.todo -= 1
            if not plan.todo:
                self._finish_actor(plan)

    def _plan(self, actor: int, clips: list[RavdessClip], root: Optional[Path], origin: Optional[dict]):
        index = cache.shard_index(self.cache_dir, actor)
        shard = index["clips"] if index and index.get("hash") == self.manifest["hash"] else {}
        staged = self.staging.keys(actor)
        keep, jobs = set(shard), []
        for clip in clips:
            key = cache.source_key(clip.path)
            if shard.get(clip.stem) == key:
                self.already += 1
                self.staging.drop(clip.stem)  # staged again by a run killed after writing the shard
                continue
            keep.discard(clip.stem)  # new, or its source changed: the shard's copy (if any) is stale
            if staged.get(clip.stem) == key:
                self.resumed += 1
                continue
            self.staging.drop(clip.stem)
            problem = None if self.retry_problems else cache.known_problem(self.cache_dir, clip.stem, clip.path)
            if problem is not None:
                self.known.append(Problem(**problem, stage="preprocess"))
                continue
            jobs.append((str(clip.path), clip.stem, _shown(clip.path, root)))
        old_origin = (index or {}).get("origin")
        origin = origin if origin is not None else old_origin
        write = bool(jobs) or bool(self.staging.keys(actor)) or keep != set(shard) or origin != old_origin
        return _ActorPlan(actor, keep, len(jobs), write, origin), jobs

    def _finish_actor(self, plan: _ActorPlan) -> None:
        """Write the actor's shard from the clips kept from its old shard and the staged ones."""
        members = {**cache.read_members(self.cache_dir, plan.actor, plan.keep), **self.staging.members(plan.actor)}
        if members:
            cache.write_shard(self.cache_dir, plan.actor, members, self.manifest["hash"], plan.origin)
        else:
            cache.shard_path(self.cache_dir, plan.actor).unlink(missing_ok=True)
        self.staging.clear(plan.actor)

    def _run(self, jobs: list[tuple]):
        """Results of `jobs`, in the order they finish; the workers start on the first call and serve later ones."""
        from fer_lib.data.video import default_threads

        if self._workers is None:
            self._workers = min(self.workers, math.ceil(len(jobs) / CLIPS_PER_WORKER))
            args = (dataclasses.asdict(self.config), TORCH_THREADS, default_threads(self._workers),
                    self.device, str(self.cache_dir), self.staging)
            if self._workers > 1:
                pool = mp.get_context("spawn").Pool(self._workers, initializer=_worker_init, initargs=args)
                self._pool = self._stack.enter_context(pool)  # terminated on leaving
            else:
                import torch

                self._stack.callback(_worker_exit, torch.get_num_threads())
                _worker_init(*args)
        return self._pool.imap_unordered(_worker_run, jobs) if self._pool is not None else map(_worker_run, jobs)

    # the report ------------------------------------------------------------------------------
    def finish(self, index: DataIndex, interrupted: bool = False, verbose: bool = True) -> dict:
        """Save report.json and problems.csv in the cache, print the check (`verbose`); returns the summary.

        summary: cache_dir, manifest_hash, clips (found), cached (in the cache now), new (this run),
        resumed (staged by an earlier run), already_cached, problems, problem_kinds, skipped, seconds,
        seconds_per_new_clip, workers (processes started; 0: nothing to do), interrupted, report, problems_csv.
        """
        config = self.config
        new_problems = [Problem(r["path"], r["kind"], r["reason"], stage="preprocess")
                        for r in self.results if r["status"] != "ok"]
        problems = index.problems + self.known + new_problems + cache.shard_problems(self.cache_dir, crc=False)
        stems = cache.cached_stems(self.cache_dir)
        cached_counts = {a: [0] * 8 for a in range(1, 25)}
        for c in index.clips:
            if c.stem in stems and c.vocal_channel == 1:
                cached_counts[c.actor][c.label] += 1
        new = [r for r in self.results if r["status"] == "ok"]
        seconds = time.perf_counter() - self.start
        report = {
            "stage": "preprocess",
            "interrupted": interrupted,
            "cache_dir": str(self.cache_dir),
            "manifest_hash": self.manifest["hash"],
            "preprocess_config": dataclasses.asdict(config),
            **index.to_dict(),
            "cached": {"total": len(stems), "audio_visual_speech": sum(map(sum, cached_counts.values())),
                       "per_actor": {f"{a:02d}": sum(c) for a, c in cached_counts.items()}},
            "problems": [dataclasses.asdict(p) for p in problems],
            "run": {"new": len(new), "resumed": self.resumed, "seconds": round(seconds, 2),
                    "seconds_per_new_clip": round(sum(r["seconds"] for r in new) / len(new), 3) if new else None,
                    "frames_without_face": sum(config.input.num_frames - r.get("detected_frames", config.input.num_frames)
                                               for r in new)},
        }
        json_path, csv_path = save_report(self.cache_dir, report, problems)
        summary = {
            "cache_dir": str(self.cache_dir), "manifest_hash": self.manifest["hash"], "clips": len(index.clips),
            "cached": len(stems), "new": len(new), "resumed": self.resumed, "already_cached": self.already,
            "problems": len(problems), "problem_kinds": problem_counts(problems), "skipped": dict(index.skipped),
            "seconds": round(seconds, 2), "seconds_per_new_clip": report["run"]["seconds_per_new_clip"],
            "workers": self._workers or 0, "interrupted": interrupted, "report": str(json_path), "problems_csv": str(csv_path),
        }
        if verbose:
            print(format_report(dataclasses.replace(index, problems=problems), cached=cached_counts))
            print(f"\n  cache: {self.cache_dir} (hash {self.manifest['hash']}): {len(stems)} clips cached, {len(new)} "
                  f"new this run, {self.resumed} picked up from an interrupted run, {self.already} already there, "
                  f"{len(problems)} problems; {seconds:.1f} s")
            print(f"  report: {json_path}  problems: {csv_path}")
        return summary


def _shown(path: Path, root: Optional[Path]) -> str:
    try:
        return str(path.relative_to(root)) if root is not None else str(path)
    except ValueError:
        return str(path)


def preprocess(data_dir: str | Path, cache_dir: str | Path, config: Optional[PreprocessConfig] = None,
               workers: Optional[int] = None, overwrite: bool = False, unpack_dir: Optional[str | Path] = None,
               device: str = "auto", staging_dir: Optional[str | Path] = None, progress: bool = True,
               verbose: bool = True, retry_problems: bool = False) -> dict:
    """Preprocess every usable clip of `data_dir` into `cache_dir` (module docstring). Returns the summary
    of `Preprocessor.finish`.

    Raises DataError (missing/empty data folder), CacheMismatchError or FolderInUseError before doing
    any work, MachineFault when the machine fails under it.
    """
    config = config or PreprocessConfig()
    index = build_index(data_dir, config, probe_media=False, unpack_dir=unpack_dir, progress=progress)
    with Preprocessor(cache_dir, config, workers, device, staging_dir, overwrite, progress, retry_problems) as run:
        uncached = len({c.stem for c in index.clips} - cache.cached_stems(run.cache_dir))
        if uncached:  # the Drive budget: printed, and checked before the first byte
            cache.check_space(run.cache_dir, cache.estimated_bytes(uncached, config),
                              f"the preprocessing cache of {uncached} clips")
        try:
            run.process(index.clips, index.root)
        except BaseException:  # Ctrl-C or a fault: report what was done, if the machine still lets us
            with contextlib.suppress(OSError):
                run.finish(index, interrupted=True, verbose=verbose)
            raise
        return run.finish(index, verbose=verbose)
