"""Build the per-clip preprocessing cache once; resumable, atomic per clip.

    python -m fer_lib.preprocess --data_dir RAW --cache_dir CACHE [--workers N] [--overwrite] [--check]

or, in a notebook, `preprocess(data_dir, cache_dir, config=PreprocessConfig(), workers=1) -> summary`;
`ensure_cache(data_dir, cache_dir)` is what training and evaluation call to find or build the cache.

Per clip (see `fer_lib.data.video` and `fer_lib.data.faces`): one window of
`input.clip_seconds` placed on the speech, shared by both modalities; mono 16 kHz audio
(`input.num_samples` float32, zero-padded, `audio_length` valid samples); T = `input.num_frames`
frames uniformly spaced in the window, MTCNN-tracked face crops `image_size`^2 uint8 and the 5
MTCNN landmarks in crop pixels.

The cache's layout and entry format are `fer_lib.data.cache`'s.

Rules:
- Entries are written atomically: a killed run leaves no half entry. A re-run skips every clip already cached and every clip already recorded as a problem whose
  source file is unchanged (`retry_problems=True` / `--retry_problems` tries those again), so it
  finishes in seconds when nothing is new.
- Faceless clips (no face on any frame) are not cached; they are listed as problems (kind
  `faceless`). Frames without a face inside a clip are cached (`face_detected` False there).
- A cache_dir built with other parameters raises `CacheMismatchError` naming the changed fields;
  use a new cache_dir or `overwrite=True` / `--overwrite` (which deletes this cache's files, and only those).
- Nothing crashes a whole run: a clip that fails is reported and the others are cached.
- `workers > 1` runs clips in `workers` spawned processes (each builds its own MTCNN; torch uses
  one thread per worker, the video decoder cpu_count / workers). Use about one worker per core
  (`--workers 8` on a Colab runtime with 8+ cores). Two runs must not share one cache_dir at once.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm.auto import tqdm

from fer_lib import cli
from fer_lib.config import PreprocessConfig, from_dict
from fer_lib.data import cache
from fer_lib.data.index import DataError, DataIndex, Problem, build_index, check_data, format_report, problem_counts, save_report

# MTCNN on 320 px frames gains little from more threads, and OpenMP threads collapse (10x slower
# measured) when the CPU is shared; parallelism comes from `workers` instead.
TORCH_THREADS = 1


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
    """Decode, window, track, crop one clip. Returns (arrays for the cache file, info).

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


# Worker state (one per process; spawn-safe: everything below is top-level)
_STATE: dict = {}


def _worker_init(config_dict: dict, torch_threads: int, decode_threads: int, device: str) -> None:
    import torch

    from fer_lib.data.faces import FaceTracker

    if torch_threads:
        torch.set_num_threads(torch_threads)
    config = from_dict(PreprocessConfig, config_dict)
    _STATE.update(config=config, tracker=FaceTracker(config, device=device).warmup(), threads=decode_threads)


def _worker_run(job: tuple[str, str, str, str]) -> dict:
    """job = (source path, stem, cache_dir, display path) -> result dict; never raises."""
    from fer_lib.data.video import ClipError

    path, stem, cache_dir, shown = job
    start = time.perf_counter()
    result = {"stem": stem, "path": shown}
    try:
        arrays, info = process_clip(path, _STATE["config"], _STATE["tracker"], _STATE["threads"])
        cache.write_entry(cache_dir, stem, arrays)
        cache.clear_problem(cache_dir, stem)  # an earlier failure, now fixed
        result.update(status="ok", detected_frames=info["detected_frames"])
    except ClipError as exc:
        result.update(status="problem", kind=exc.kind, reason=exc.message)
    except Exception as exc:  # a bug or an unexpected file: report it, keep the run going
        result.update(status="problem", kind="error", reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    if result["status"] == "problem":
        try:
            cache.record_problem(cache_dir, stem, path, {k: result[k] for k in ("path", "kind", "reason")})
        except OSError:
            pass
    result["seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def preprocess(data_dir: str | Path, cache_dir: str | Path, config: Optional[PreprocessConfig] = None,
               workers: int = 1, overwrite: bool = False, unpack_dir: Optional[str | Path] = None,
               device: str = "cpu", progress: bool = True, verbose: bool = True, retry_problems: bool = False) -> dict:
    """Preprocess every usable clip of `data_dir` into `cache_dir` (module docstring). Returns a summary dict.

    summary: cache_dir, manifest_hash, clips (found), cached (now in the cache), new (this run),
    already_cached, problems (count), problem_kinds, skipped, seconds, seconds_per_new_clip, report.
    Raises DataError (missing/empty data folder) or CacheMismatchError before doing any work.
    """
    from fer_lib.data.video import default_threads

    config = config or PreprocessConfig()
    start = time.perf_counter()
    cache_dir = Path(cache_dir).expanduser()
    index = build_index(data_dir, config, probe_media=False, unpack_dir=unpack_dir, progress=progress)
    manifest = cache.prepare(cache_dir, config, overwrite=overwrite)
    cache.remove_stale_temporaries(cache_dir)  # left by a killed run

    done = cache.cached_stems(cache_dir)
    jobs, known = [], []
    for record in index.clips:
        if record.stem in done:
            continue
        problem = None if retry_problems else cache.known_problem(cache_dir, record.stem, record.path)
        if problem is not None:
            known.append(Problem(**problem, stage="preprocess"))
            continue
        jobs.append((str(record.path), record.stem, str(cache_dir), _shown(record.path, index.root)))

    results: list[dict] = []
    interrupted = False
    try:
        if jobs:
            workers = max(1, min(int(workers), len(jobs)))
            decode_threads = default_threads(workers)
            bar = tqdm(total=len(jobs), desc="preprocess", unit="clip", disable=not progress)
            args = (dataclasses.asdict(config), TORCH_THREADS, decode_threads, device)
            if workers == 1:
                import torch

                previous = torch.get_num_threads()
                try:
                    _worker_init(*args)
                    for job in jobs:
                        results.append(_worker_run(job))
                        _tick(bar, results)
                finally:
                    torch.set_num_threads(previous)  # a notebook's torch keeps its threads
                    _STATE.clear()
            else:
                ctx = mp.get_context("spawn")
                with ctx.Pool(workers, initializer=_worker_init, initargs=args) as pool:
                    for result in pool.imap_unordered(_worker_run, jobs):
                        results.append(result)
                        _tick(bar, results)
            bar.close()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        already = sum(c.stem in done for c in index.clips)
        summary = _finish(index, cache_dir, manifest, config, results, known, already, start, interrupted, verbose)
    return summary


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _tick(bar, results: list[dict]) -> None:
    bar.update(1)
    n_bad = sum(r["status"] != "ok" for r in results)
    if n_bad:
        bar.set_postfix(problems=n_bad)


def _finish(index: DataIndex, cache_dir: Path, manifest: dict, config: PreprocessConfig, results: list[dict],
            known: list[Problem], already: int, start: float, interrupted: bool, verbose: bool) -> dict:
    new_problems = [Problem(r["path"], r["kind"], r["reason"], stage="preprocess") for r in results if r["status"] != "ok"]
    problems = index.problems + known + new_problems
    stems = cache.cached_stems(cache_dir)
    cached_counts = {a: [0] * 8 for a in range(1, 25)}
    for c in index.clips:
        if c.stem in stems and c.vocal_channel == 1:
            cached_counts[c.actor][c.label] += 1
    new = [r for r in results if r["status"] == "ok"]
    seconds = time.perf_counter() - start
    report = {
        "stage": "preprocess",
        "interrupted": interrupted,
        "cache_dir": str(cache_dir),
        "manifest_hash": manifest["hash"],
        "preprocess_config": dataclasses.asdict(config),
        **index.to_dict(),
        "cached": {"total": len(stems), "audio_visual_speech": sum(map(sum, cached_counts.values())),
                   "per_actor": {f"{a:02d}": sum(c) for a, c in cached_counts.items()}},
        "problems": [dataclasses.asdict(p) for p in problems],
        "run": {"new": len(new), "seconds": round(seconds, 2),
                "seconds_per_new_clip": round(sum(r["seconds"] for r in new) / len(new), 3) if new else None,
                "frames_without_face": sum(config.input.num_frames - r.get("detected_frames", config.input.num_frames)
                                           for r in new)},
    }
    json_path, csv_path = save_report(cache_dir, report, problems)
    summary = {
        "cache_dir": str(cache_dir), "manifest_hash": manifest["hash"], "clips": len(index.clips),
        "cached": len(stems), "new": len(new), "already_cached": already,
        "problems": len(problems), "problem_kinds": problem_counts(problems), "skipped": dict(index.skipped),
        "seconds": round(seconds, 2), "seconds_per_new_clip": report["run"]["seconds_per_new_clip"],
        "interrupted": interrupted, "report": str(json_path), "problems_csv": str(csv_path),
    }
    if verbose:
        print(format_report(dataclasses.replace(index, problems=problems), cached=cached_counts))
        print(f"\n  cache: {cache_dir} (hash {manifest['hash']}): {len(stems)} clips cached, {len(new)} new this run, "
              f"{summary['already_cached']} already there, {len(problems)} problems; {seconds:.1f} s")
        print(f"  report: {json_path}  problems: {csv_path}")
    return summary


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def default_cache_dir(data_dir: str | Path) -> Path:
    """Where the cache of raw clips in `data_dir` goes by default: `cache/preprocessed/` beside it, as in
    the Drive layout (`MyDrive/fer/ravdess` -> `MyDrive/fer/cache/preprocessed`)."""
    return Path(data_dir).expanduser().parent / "cache" / "preprocessed"


def ensure_cache(data_dir: Optional[str | Path] = None, cache_dir: Optional[str | Path] = None,
                 config: Optional[PreprocessConfig] = None, **preprocess_kwargs) -> Path:
    """The preprocessing cache a command reads, built first when raw clips are given.

    - `cache_dir` alone: it must be a cache.
    - `data_dir` (raw clips): preprocessed into `cache_dir` (default `default_cache_dir(data_dir)`);
      resumable, so a cache that is complete costs seconds.
    `data_dir` is always raw clips: a cache passed as data_dir is a one-line DataError saying so.
    """
    if data_dir is None:
        if cache_dir is None:
            raise DataError("no data: give --cache_dir (the preprocessing cache) or --data_dir (the raw RAVDESS clips)")
        cache_dir = Path(cache_dir).expanduser()
        cache.read_manifest(cache_dir)  # a one-line DataError when it is not a cache
        return cache_dir
    data_dir = Path(data_dir).expanduser()
    if cache.is_cache(data_dir):
        raise DataError(f"{data_dir} is a preprocessing cache, not raw clips: pass it as --cache_dir "
                        "(--data_dir is always the raw RAVDESS folder)")
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(data_dir)
    summary = preprocess(data_dir, cache_dir, config, verbose=False, **preprocess_kwargs)
    print(f"preprocessing cache {cache_dir}: {summary['cached']} clips ({summary['new']} new this run, "
          f"{summary['problems']} problems: {summary['report']})")
    return cache_dir


@cli.command(interrupted="finished clips are cached; run the same command again to resume")
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.preprocess",
                                description="Preprocess RAVDESS clips into the cache (resumable).")
    parser.add_argument("--data_dir", required=True, help="RAVDESS folder: Actor_XX/*.mp4 and/or Video_Speech_Actor_XX.zip")
    parser.add_argument("--cache_dir", required=True, help="where the cache goes (fer_lib.data.cache)")
    parser.add_argument("--workers", type=cli.POSITIVE_INT, default=1, help="parallel processes (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="delete a cache built with other parameters and rebuild")
    parser.add_argument("--unpack_dir", default=None, help="unpack zips here instead of beside them")
    parser.add_argument("--device", default="cpu", help="torch device for MTCNN (default cpu)")
    parser.add_argument("--retry_problems", action="store_true", help="try again the clips an earlier run reported")
    parser.add_argument("--check", action="store_true", help="only check the data (open every clip), save the report in cache_dir")
    parser.add_argument("--include_song", action="store_true", help="also keep the song clips (vocal channel 02)")
    parser.add_argument("--clip_seconds", type=cli.POSITIVE_FLOAT, default=None, help="window length (default 3.0)")
    parser.add_argument("--num_frames", type=cli.POSITIVE_INT, default=None, help="frames per clip (default 16)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    config = PreprocessConfig(include_song=args.include_song)
    if args.clip_seconds is not None:
        config.input.clip_seconds = args.clip_seconds
    if args.num_frames is not None:
        config.input.num_frames = args.num_frames
    if args.check:
        check_data(args.data_dir, out_dir=args.cache_dir, config=config, unpack_dir=args.unpack_dir,
                   progress=not args.no_progress)
    else:
        preprocess(args.data_dir, args.cache_dir, config, workers=args.workers, overwrite=args.overwrite,
                   unpack_dir=args.unpack_dir, device=args.device, progress=not args.no_progress,
                   retry_problems=args.retry_problems)
    return 0


if __name__ == "__main__":
    sys.exit(main())
