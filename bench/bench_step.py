"""One training step of `tiny` on this CPU: forward + backward + AdamW at batch 8, and samples per second.

    python -m bench.bench_step
"""

from __future__ import annotations

import statistics
import time

import torch

from bench.bench_models import random_batch
from fer_lib.config import get_preset
from fer_lib.models import build_model


def run(preset: str = "tiny", batch_size: int = 8, steps: int = 5) -> dict:
    cfg = get_preset(preset)
    model = build_model(cfg).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = {**random_batch(cfg, batch_size), "label": torch.arange(batch_size) % cfg.classifier.num_classes}
    times = []
    for step in range(steps + 1):  # the first step warms up allocators and kernels: not counted
        start = time.perf_counter()
        model(batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    figures = {"preset": preset, "batch_size": batch_size, "threads": torch.get_num_threads(),
               "step_s_fwd_bwd_adamw": round(seconds, 3), "samples_per_s": round(batch_size / seconds, 1)}
    print(f"{preset} training step at batch {batch_size}: {seconds:.3f} s ({batch_size / seconds:.1f} samples/s)")
    return figures


if __name__ == "__main__":
    run()
