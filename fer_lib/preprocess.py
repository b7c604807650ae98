"""Build the per-clip preprocessing cache once; resumable, atomic per clip.

    python -m fer_lib.preprocess --data_dir DIR --cache_dir DIR [--workers N] [--overwrite] [--check]

or, in a notebook, `preprocess(data_dir, cache_dir, config=PreprocessConfig(), workers=1) -> summary`.

Per clip (see `fer_lib.data.video` and `fer_lib.data.faces`): one window of
`input.clip_seconds` placed on the speech, shared by both modalities; mono 16 kHz audio
(`input.num_samples` float32, zero-padded, `audio_length` valid samples); T = `input.num_frames`
frames uniformly spaced in the window, MTCNN-tracked face crops `image_size`^2 uint8 and the 5
MTCNN landmarks in crop pixels.

Cache layout (`cache_dir/`):

    manifest.json            {"format", "hash", "preprocess_config": asdict(PreprocessConfig), "created"}
    01-01-03-02-01-01-05.npz one per clip, named by the clip stem (np.savez, uncompressed):
        audio         float32 [num_samples]          mono 16 kHz window, zeros after audio_length
        audio_length  int64 []                       valid samples
        frames        uint8   [T, 3, S, S]           face crops, RGB, channels first
        landmarks     float32 [T, 5, 2]              crop pixels: l-eye, r-eye, nose, l-mouth, r-mouth
        label         int64 []                       0..7, order of fer_lib.EMOTIONS
        actor         int64 []                       1..24
        face_detected bool    [T]                    False: box reused from neighbours, landmarks canonical
        window_start  float64 []                     seconds into the clip
        frame_times   float64 [T]                    time of each frame used
        duration      float64 []                     seconds of audio in the clip
    problems/<stem>.json     a clip that could not be cached (kind, reason, source size and mtime)
    report.json, problems.csv  what was found vs expected, what was cached, every problem

Rules:
- A clip file is written to a temporary name, then renamed: a killed run leaves no half file. A
  re-run skips every clip already cached and every clip already recorded as a problem whose
  source file is unchanged (`retry_problems=True` / `--retry_problems` tries those again), so it
  finishes in seconds when nothing is new.
- Faceless clips (no face on any frame) are not cached; they are listed as problems (kind
  `faceless`). Frames without a face inside a clip are cached (`face_detected` False there).
- The manifest hash covers every PreprocessConfig field and the cache format. A cache_dir built
  with other parameters raises `CacheMismatchError` naming the changed fields; use a new
  cache_dir or `overwrite=True` / `--overwrite` (which deletes this cache's files, and only those).
- Nothing crashes a whole run: a clip that fails is reported and the others are cached.
- `workers > 1` runs clips in `workers` spawned processes (each builds its own MTCNN; torch uses
  one thread per worker, the video decoder cpu_count / workers). Use about one worker per core
  (`--workers 8` on a Colab runtime with 8+ cores). Two runs must not share one cache_dir at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm.auto import tqdm

from fer_lib.config import ConfigError, PreprocessConfig, from_dict
from fer_lib.data.index import (
    DataError, DataIndex, Problem, build_index, check_data, format_report, problem_counts, save_report,
)
from fer_lib.data.ravdess import NAME_PATTERN

CACHE_FORMAT = 1
# MTCNN on 320 px frames gains little from more threads, and OpenMP threads collapse (10x slower
# measured) when the CPU is shared; parallelism comes from `workers` instead.
TORCH_THREADS = 1
MANIFEST = "manifest.json"
PROBLEMS_DIR = "problems"
TMP_SUFFIX = ".tmp"


class CacheMismatchError(DataError):
    """The cache_dir was built with other preprocessing parameters."""


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def config_hash(config: PreprocessConfig) -> str:
    """16 hex digits over the cache format and every PreprocessConfig field."""
    payload = json.dumps({"format": CACHE_FORMAT, "config": dataclasses.asdict(config)}, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_manifest(cache_dir: str | Path) -> dict:
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"no {MANIFEST} in {cache_dir}: not a preprocessing cache; run "
                        f"`python -m fer_lib.preprocess --data_dir DIR --cache_dir {cache_dir}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rebuild the cache with --overwrite") from None


def manifest_hash(cache_dir: str | Path) -> str:
    """The hash of the preprocessing parameters a cache was built with (keys embedding caches, checkpoints)."""
    return read_manifest(cache_dir)["hash"]


def manifest_config(cache_dir: str | Path) -> PreprocessConfig:
    """The PreprocessConfig a cache was built with."""
    try:
        return from_dict(PreprocessConfig, read_manifest(cache_dir)["preprocess_config"])
    except (ConfigError, KeyError) as exc:
        raise DataError(f"{Path(cache_dir) / MANIFEST} does not match this version of fer_lib ({exc}); "
                        "rebuild the cache with --overwrite or use a new cache_dir") from None


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _cache_files(cache_dir: Path) -> list[Path]:
    """The files this module writes in a cache_dir (what --overwrite deletes)."""
    files = [p for p in cache_dir.glob("*.npz") if NAME_PATTERN.match(p.stem)]
    files += [p for p in cache_dir.glob(f".*{TMP_SUFFIX}")]
    files += [p for p in (cache_dir / PROBLEMS_DIR).glob("*.json")] if (cache_dir / PROBLEMS_DIR).is_dir() else []
    files += [p for p in (cache_dir / MANIFEST, cache_dir / "report.json", cache_dir / "problems.csv") if p.exists()]
    return files


def prepare_cache_dir(cache_dir: str | Path, config: PreprocessConfig, overwrite: bool = False) -> dict:
    """Create or validate `cache_dir` for `config`; returns its manifest. See the module rules."""
    cache_dir = Path(cache_dir).expanduser()
    if cache_dir.exists() and not cache_dir.is_dir():
        raise DataError(f"cache_dir {cache_dir} exists and is not a folder")
    cache_dir.mkdir(parents=True, exist_ok=True)
    wanted = {"format": CACHE_FORMAT, "hash": config_hash(config), "preprocess_config": dataclasses.asdict(config)}
    path = cache_dir / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {"hash": "unreadable", "preprocess_config": {}}
        if old.get("hash") == wanted["hash"]:
            return old
        if not overwrite:
            before, after = _flatten(old.get("preprocess_config", {})), _flatten(wanted["preprocess_config"])
            changed = [f"{k}: {before.get(k, '-')} -> {after.get(k, '-')}" for k in sorted(set(before) | set(after))
                       if before.get(k) != after.get(k)]
            what = "; ".join(changed) if changed else f"cache format {old.get('format')} -> {CACHE_FORMAT}"
            raise CacheMismatchError(f"{cache_dir} was built with other preprocessing parameters ({what}); "
                                     "use a new --cache_dir, or pass --overwrite (overwrite=True) to delete and rebuild it")
    else:
        existing = [p for p in cache_dir.glob("*.npz") if NAME_PATTERN.match(p.stem)]
        if existing and not overwrite:
            raise CacheMismatchError(f"{cache_dir} holds {len(existing)} cached clips but no {MANIFEST}, so their "
                                     "parameters are unknown; use a new --cache_dir, or pass --overwrite to rebuild it")
    if overwrite:
        for p in _cache_files(cache_dir):
            p.unlink(missing_ok=True)
    manifest = {**wanted, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = cache_dir / f".{MANIFEST}{TMP_SUFFIX}"
    tmp.write_text(json.dumps(manifest, indent=2, default=list))
    os.replace(tmp, path)
    return manifest


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


def write_npz(path: Path, arrays: dict) -> None:
    """np.savez to a temporary file in the same folder, then an atomic rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _source_signature(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime": int(st.st_mtime)}


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
        write_npz(Path(cache_dir) / f"{stem}.npz", arrays)
        (Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json").unlink(missing_ok=True)  # an earlier failure, now fixed
        result.update(status="ok", detected_frames=info["detected_frames"])
    except ClipError as exc:
        result.update(status="problem", kind=exc.kind, reason=exc.message)
    except Exception as exc:  # a bug or an unexpected file: report it, keep the run going
        result.update(status="problem", kind="error", reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    if result["status"] == "problem":
        try:
            marker = Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json"
            marker.parent.mkdir(exist_ok=True)
            record = {"path": shown, "kind": result["kind"], "reason": result["reason"], **_source_signature(Path(path))}
            tmp = marker.with_name(f".{marker.name}.{os.getpid()}{TMP_SUFFIX}")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, marker)
        except OSError:
            pass
    result["seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def cached_stems(cache_dir: str | Path) -> set[str]:
    return {p.stem for p in Path(cache_dir).glob("*.npz") if NAME_PATTERN.match(p.stem)}


def _known_problem(cache_dir: Path, stem: str, source: Path) -> Optional[Problem]:
    marker = cache_dir / PROBLEMS_DIR / f"{stem}.json"
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
        if {k: record.get(k) for k in ("size", "mtime")} != _source_signature(source):
            return None  # the source changed: try again
        return Problem(record["path"], record["kind"], record["reason"], stage="preprocess")
    except (OSError, json.JSONDecodeError, KeyError):
        return None


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
    manifest = prepare_cache_dir(cache_dir, config, overwrite=overwrite)
    for stray in cache_dir.glob(f".*{TMP_SUFFIX}"):  # left by a killed run
        stray.unlink(missing_ok=True)
    if (cache_dir / PROBLEMS_DIR).is_dir():
        for stray in (cache_dir / PROBLEMS_DIR).glob(f".*{TMP_SUFFIX}"):
            stray.unlink(missing_ok=True)

    done = cached_stems(cache_dir)
    jobs, known = [], []
    for record in index.clips:
        if record.stem in done:
            continue
        problem = None if retry_problems else _known_problem(cache_dir, record.stem, record.path)
        if problem is not None:
            known.append(problem)
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
    stems = cached_stems(cache_dir)
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


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_lib.preprocess",
                                     description="Preprocess RAVDESS clips into the per-clip cache (resumable).")
    parser.add_argument("--data_dir", required=True, help="RAVDESS folder: Actor_XX/*.mp4 and/or Video_Speech_Actor_XX.zip")
    parser.add_argument("--cache_dir", required=True, help="where the cache goes (manifest.json, one .npz per clip)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="delete a cache built with other parameters and rebuild")
    parser.add_argument("--unpack_dir", default=None, help="unpack zips here instead of beside them")
    parser.add_argument("--device", default="cpu", help="torch device for MTCNN (default cpu)")
    parser.add_argument("--retry_problems", action="store_true", help="try again the clips an earlier run reported")
    parser.add_argument("--check", action="store_true", help="only check the data (open every clip), save the report in cache_dir")
    parser.add_argument("--include_song", action="store_true", help="also keep the song clips (vocal channel 02)")
    parser.add_argument("--clip_seconds", type=float, default=None, help="window length (default 3.0)")
    parser.add_argument("--num_frames", type=int, default=None, help="frames per clip (default 16)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    config = PreprocessConfig(include_song=args.include_song)
    if args.clip_seconds is not None:
        config.input.clip_seconds = args.clip_seconds
    if args.num_frames is not None:
        config.input.num_frames = args.num_frames
    try:
        if args.check:
            check_data(args.data_dir, out_dir=args.cache_dir, config=config, unpack_dir=args.unpack_dir,
                       progress=not args.no_progress)
        else:
            preprocess(args.data_dir, args.cache_dir, config, workers=args.workers, overwrite=args.overwrite,
                       unpack_dir=args.unpack_dir, device=args.device, progress=not args.no_progress,
                       retry_problems=args.retry_problems)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished clips are cached; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
