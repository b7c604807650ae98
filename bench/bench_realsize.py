"""One training step of the real-size presets on the CPU: shapes, dtypes and memory at the size a user trains.

    python -m bench --only realsize            # figures into bench/results.json and README
    python -m bench.bench_realsize [--presets lightweight full]

Each preset runs in a process of its own (so that its peak RSS is its own), built with `random_init=True`
(the real architectures, random weights, no hub), exactly as training sets it up: frozen SigLIP2 and
Parakeet, `lightweight` with its small LFM2, `full` with LFM2-700M through LoRA adapters
(`fer_lib.models.lora`). Per preset:
- step_s: one optimizer step (forward, backward, AdamW from `build_optimizer`, fp32 as on a CPU) from
  cached encoder features (fp16 tensors of the shapes the embedding cache stores,
  `sizes.feature_shapes`): batch 2 for `lightweight`, batch 1 for `full`; the first step, so it includes
  allocating AdamW's state;
- peak_rss_gb: the process's peak resident memory (building the model included) against
  estimate_gb, `sizes.estimate_training_memory` at that batch size in fp32 (computed);
- checkpoint_mb: the checkpoint `fer_lib.training.checkpoint.save` writes after that step, measured on
  disk, against checkpoint_mb_computed (`sizes.checkpoint_bytes`).
A few minutes on a 2-core CPU, mostly building the models: too long for the test suite, which checks the
same code at tiny size (tests/test_models.py: a saved checkpoint's size).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

BATCH_SIZES = {"lightweight": 2, "full": 1}


def measure(preset: str, batch_size: int) -> dict:
    """One step of `preset` at `batch_size` in this process; see the module docstring."""
    import torch

    from fer_lib.config import TrainConfig, get_preset
    from fer_lib.models import build_model
    from fer_lib.models.sizes import checkpoint_bytes, estimate_training_memory, feature_shapes, parameter_table
    from fer_lib.training import checkpoint
    from fer_lib.training.optim import build_optimizer

    torch.manual_seed(0)
    start = time.perf_counter()
    model = build_model(get_preset(preset), random_init=True).train()
    build_s = time.perf_counter() - start
    shapes = feature_shapes(model)
    batch = {"audio_features": torch.randn(batch_size, *shapes["audio"]).half(),
             "visual_features": torch.randn(batch_size, *shapes["visual"]).half(),
             "audio_lengths": torch.full((batch_size,), model.config.input.num_samples),
             "label": torch.arange(batch_size) % model.config.classifier.num_classes}
    optimizer = build_optimizer(model, TrainConfig())
    start = time.perf_counter()
    loss = model(batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    step_s = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
    counts = parameter_table(model)["total"]
    with tempfile.TemporaryDirectory(prefix="bench_realsize_") as tmp:
        folder, = checkpoint.save(checkpoint.Checkpoint(
            weights=model.trainable_state_dict(), state={"optimizer": optimizer.state_dict()}, progress={},
            config={}, split={}), tmp)
        saved = sum(path.stat().st_size for path in folder.iterdir())
    return {
        "batch_size": batch_size,
        "parameters_total": counts["total"],
        "parameters_trainable": counts["trainable"],
        "adapted": sorted(model.adapted),
        "loss_finite": bool(torch.isfinite(loss)),
        "build_s": round(build_s, 1),
        "step_s": round(step_s, 2),
        "peak_rss_gb": round(peak_rss / 1024**3, 2),
        "estimate_gb": round(estimate_training_memory(model, batch_size, "fp32")["total_gb"], 2),
        "checkpoint_mb": round(saved / 2**20, 1),
        "checkpoint_mb_computed": round(checkpoint_bytes(model)["total"] / 2**20, 1),
    }


def run(presets: tuple[str, ...] = tuple(BATCH_SIZES)) -> dict:
    figures: dict = {"device": "cpu", "precision": "fp32", "weights": "random (random_init=True, no hub)",
                     "input": "cached encoder features (fp16)"}
    for preset in presets:
        start = time.perf_counter()
        child = subprocess.run([sys.executable, "-m", "bench.bench_realsize", "--child", preset],
                               capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if child.returncode:
            raise SystemExit(f"{preset}: the step failed:\n{child.stderr[-3000:]}")
        figures[preset] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{preset}: {figures[preset]} ({time.perf_counter() - start:.0f} s)", flush=True)
    return figures


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_realsize", description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", choices=tuple(BATCH_SIZES), default=list(BATCH_SIZES))
    parser.add_argument("--child", choices=tuple(BATCH_SIZES), help=argparse.SUPPRESS)  # one preset, JSON out
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, BATCH_SIZES[args.child])))
    else:
        run(tuple(args.presets))


if __name__ == "__main__":
    main()
