"""The GPU benchmark, in one go: real-size presets with random weights (no hub), measured on the GPU.

    bash bench/gpu.sh                      # on a GPU machine: figures into bench/results.json and README
    python -m bench.bench_gpu --dry_run    # tiny sizes on a CPU, a few seconds: the test suite runs this

Per preset (`lightweight`, `full`; `tiny` in the dry run), built with `random_init=True` (the real
architectures, random weights: the speed and memory of the real model without a download):
- step_s_batch8_raw / step_s_batch8_cached: one training step (forward, backward, AdamW) at batch 8
  in bf16 autocast, from raw clips (the frozen encoders run in the step) and from cached encoder
  features (what every epoch after the first runs); median of a few steps after a warm-up;
- peak_gpu_gb_raw / peak_gpu_gb_cached: `torch.cuda.max_memory_allocated` over those steps;
- cache_build_clips_per_s: the embedding-cache build, both encoders' `forward_features` in bf16;
and once, preprocess_clips_per_s: `fer_lib.preprocess` with MTCNN on the GPU over synthetic 720p clips
(one worker; decoding stays on the CPU). Everything is bounded to finish within 8 minutes on one GPU.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from bench.bench_models import random_batch
from fer_lib import cli
from fer_lib.config import get_preset
from fer_lib.errors import FerError
from fer_lib.models import build_model

GPU_PRESETS = ("lightweight", "full")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_preset(preset: str, device: torch.device, batch_size: int, repeats: int) -> dict:
    cfg = get_preset(preset)
    with device:
        model = build_model(cfg, random_init=True)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    raw = {k: v.to(device) for k, v in random_batch(cfg, batch_size).items()}
    raw["audio_lengths"] = torch.full((batch_size,), cfg.input.num_samples, device=device)
    raw["label"] = torch.arange(batch_size, device=device) % cfg.classifier.num_classes
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    with torch.no_grad(), autocast:
        cached = {"audio_features": model.audio.forward_features(raw["audio"], raw["audio_lengths"]),
                  "visual_features": model.visual.forward_features(raw["frames"]),
                  "audio_lengths": raw["audio_lengths"], "label": raw["label"]}

    def step(batch):
        with autocast:
            loss = model(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def encode():
        with torch.inference_mode(), autocast:
            model.audio.forward_features(raw["audio"], raw["audio_lengths"])
            model.visual.forward_features(raw["frames"])

    figures = {}
    for name, batch in (("raw", raw), ("cached", cached)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        figures[f"step_s_batch{batch_size}_{name}"] = round(_timed(lambda: step(batch), device, repeats), 4)
        if device.type == "cuda":
            figures[f"peak_gpu_gb_{name}"] = round(torch.cuda.max_memory_allocated(device) / 1024**3, 2)
    figures["cache_build_clips_per_s"] = round(batch_size / _timed(encode, device, repeats), 1)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return figures


def measure_preprocess(device: torch.device, clips: int, seconds: float) -> dict:
    from bench.bench_preprocess import make_clips
    from fer_lib.preprocess import preprocess

    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        make_clips(Path(tmp) / "data", clips, seconds)
        start = time.perf_counter()
        summary = preprocess(Path(tmp) / "data", Path(tmp) / "cache", device=str(device), progress=False, verbose=False)
        wall = time.perf_counter() - start
    return {"preprocess_clips": clips, "preprocess_clip_seconds": seconds,
            "preprocess_clips_per_s": round(summary["cached"] / wall, 2),
            "preprocess_s_per_clip_in_worker": round(summary["seconds_per_new_clip"], 4)}


class NoGpuError(FerError):
    """The GPU benchmark was asked for on a machine without a CUDA GPU; one line."""


def require_gpu() -> None:
    """NoGpuError unless torch sees a CUDA GPU: asked before any benchmark runs."""
    if not torch.cuda.is_available():
        raise NoGpuError("the gpu benchmark needs a CUDA GPU and torch sees none here: run `bash bench/gpu.sh` on a "
                         "GPU machine, or `python -m bench.bench_gpu --dry_run` for its CPU dry run")


def run(dry_run: bool = False, presets: Optional[tuple[str, ...]] = None) -> dict:
    """Measure; `dry_run`: tiny sizes on the CPU (the figures then describe nothing but that the code runs)."""
    device = torch.device("cpu" if dry_run else "cuda")
    if not dry_run:
        require_gpu()
    presets = presets or (("tiny",) if dry_run else GPU_PRESETS)
    batch_size, repeats = (2, 1) if dry_run else (8, 5)
    figures = {"device": "cpu (dry run)" if dry_run else torch.cuda.get_device_name(device),
               "precision": "bf16 autocast", "batch_size": batch_size}
    for preset in presets:
        start = time.perf_counter()
        figures[preset] = measure_preset(preset, device, batch_size, repeats)
        print(f"{preset}: {figures[preset]} ({time.perf_counter() - start:.0f} s)", flush=True)
    figures.update(measure_preprocess(device, clips=1 if dry_run else 16, seconds=1.0 if dry_run else 3.7))
    print(f"preprocess: {figures['preprocess_clips_per_s']} clips/s", flush=True)
    return figures


@cli.command()
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m bench.bench_gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--dry_run", action="store_true", help="tiny sizes on the CPU; prints, writes nothing")
    args = parser.parse_args(argv)
    run(args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
