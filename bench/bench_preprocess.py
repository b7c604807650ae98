"""Preprocessing cost per 720p clip, relative to a raw FFmpeg decode of the same clip (target <= 3x).

    python -m bench.bench_preprocess [--clips 6] [--workers 1 4] [--seconds 3.5]

Clips: synthetic RAVDESS-format files (1280x720, 30 fps, H.264 + AAC 48 kHz stereo) of `--seconds`.
Reference: imageio-ffmpeg's binary decoding the whole file, both streams, to null
(`ffmpeg -i clip -f null -`, FFmpeg's default threads), median over repeats.
1 worker: the steady per-clip time of `fer_lib.data.preprocessing.process_clip` + encoding the entry
(JPEG crops, int16 audio) and staging it, as a worker does (model built and warmed up first), median
over clips x 3 repeats, each run right after the FFmpeg decode of the same clip so that both see the
same machine load. N workers: `preprocess(..., workers=N)`
on the clips; the effective time per clip is the mean per-clip time inside the workers divided by
N (throughput once the workers run), against FFmpeg timed just before and after; the end-to-end
wall time including process start is printed too.
`run()` returns the figures as a dict (for bench/results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

TARGET_RATIO = 3.0


def make_clips(out: Path, n: int, seconds: float = 3.5, seed: int = 0) -> list[Path]:
    from fer_lib.data import synthetic

    rng = np.random.default_rng(seed)
    renderer = synthetic.FaceRenderer()
    paths = []
    for i in range(n):
        label, actor = i % 8, 1 + i // 8
        spec = synthetic.draw_spec(label, actor, "av", rng, seconds=seconds)
        path = out / f"Actor_{actor:02d}" / synthetic.clip_name(label, actor, 0)
        paths.append(synthetic.write_clip(path, spec, renderer))
    return paths


def ffmpeg_decode_seconds(path: Path, repeats: int = 1) -> float:
    """Median wall time of `ffmpeg -i clip -f null -` (both streams decoded, FFmpeg's default threads)."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def single_worker_seconds(paths: list[Path], cache: Path, repeats: int = 3) -> tuple[list[float], list[float]]:
    """(ours, ffmpeg) per-clip times, interleaved clip by clip so that both see the same machine load."""
    import torch

    from fer_lib.config import PreprocessConfig
    from fer_lib.data.cache import Staging, encode_entry, source_key
    from fer_lib.data.faces import FaceTracker
    from fer_lib.data.preprocessing import TORCH_THREADS, process_clip

    previous = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)  # as preprocess() does
    try:
        config = PreprocessConfig()
        tracker = FaceTracker(config).warmup()
        staging = Staging(cache / ".staging", cache, "bench").open()
        ours, ffmpeg = [], []
        for _ in range(repeats):
            for path in paths:
                ffmpeg.append(ffmpeg_decode_seconds(path))
                start = time.perf_counter()
                arrays, _ = process_clip(path, config, tracker)
                staging.put(path.stem, encode_entry(arrays, source_key(path)))
                ours.append(time.perf_counter() - start)
        return ours, ffmpeg
    finally:
        torch.set_num_threads(previous)


def run(n_clips: int = 6, workers: Sequence[int] = (1, 0), seconds: float = 3.5, work_dir: Optional[str] = None,
        verbose: bool = True) -> dict:
    """Measure; `workers` 0 means os.cpu_count(). Returns the figures as a dict."""
    from fer_lib.data.preprocessing import preprocess

    try:
        from bench.machine import describe_machine
        machine = describe_machine()
    except ImportError:
        machine = {"cores": os.cpu_count()}
    base = Path(work_dir or tempfile.mkdtemp(prefix="bench_preprocess_"))
    try:
        paths = make_clips(base / "data", n_clips, seconds)
        ours, ffmpeg = single_worker_seconds(paths, base / "cache_1")
        ffmpeg_s, per_clip = statistics.median(ffmpeg), statistics.median(ours)
        result = {
            "benchmark": "preprocess",
            "clip": f"1280x720 30 fps H.264 + AAC 48 kHz stereo, {seconds} s (synthetic)",
            "clips": n_clips,
            "machine": machine,
            "ffmpeg_decode_s_per_clip": round(ffmpeg_s, 4),
            "target_ratio": TARGET_RATIO,
        }
        for n in workers:
            n = n or os.cpu_count() or 1
            if n == 1:
                entry = {"s_per_clip": round(per_clip, 4), "ratio_to_ffmpeg": round(per_clip / ffmpeg_s, 2)}
            else:
                cache = base / f"cache_{n}"
                before = statistics.median(ffmpeg_decode_seconds(p) for p in paths)
                start = time.perf_counter()
                summary = preprocess(base / "data", cache, workers=n, progress=False, verbose=False)
                wall = time.perf_counter() - start
                reference = statistics.median([before] + [ffmpeg_decode_seconds(p) for p in paths])
                latency = summary["seconds_per_new_clip"]
                effective = latency / summary["workers"]
                entry = {"s_per_clip": round(effective, 4), "ratio_to_ffmpeg": round(effective / reference, 2),
                         "ffmpeg_decode_s_per_clip": round(reference, 4), "latency_s_per_clip": round(latency, 4),
                         "wall_s_total_with_startup": round(wall, 2)}
                n = summary["workers"]  # at most one per CLIPS_PER_WORKER clips start
            result[f"workers_{n}"] = entry
            if verbose:
                extra = f", wall {entry['wall_s_total_with_startup']} s for {n_clips} clips incl. start" if n > 1 else ""
                ref = entry.get("ffmpeg_decode_s_per_clip", ffmpeg_s)
                print(f"preprocess, {n} worker(s): {entry['s_per_clip']:.3f} s/clip = {entry['ratio_to_ffmpeg']:.2f}x "
                      f"ffmpeg decode ({ref:.3f} s/clip){extra}")
        if verbose:
            print(f"target <= {TARGET_RATIO}x; machine: {machine.get('cpu', '?')} ({machine.get('cores')} cores)")
        return result
    finally:
        if work_dir is None:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_preprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0], help="0 = cpu count")
    parser.add_argument("--seconds", type=float, default=3.5)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args.clips, args.workers, args.seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
