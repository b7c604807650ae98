"""Real-size presets without a download: parameter counts, the analytical memory estimate, and one
measured CPU forward at batch 1 from random init (the architecture is real, the weights are not).

    python -m bench.bench_models [--presets lightweight full]
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

from fer_lib.config import get_preset
from fer_lib.models import build_model
from fer_lib.models.sizes import build_for_sizing, estimate_training_memory, parameter_table


def random_batch(cfg, batch_size: int = 1) -> dict:
    generator = torch.Generator().manual_seed(0)
    t, s = cfg.input.num_frames, cfg.input.image_size
    return {
        "audio": torch.randn(batch_size, cfg.input.num_samples, generator=generator) * 0.1,
        "frames": torch.randint(0, 256, (batch_size, t, 3, s, s), dtype=torch.uint8, generator=generator),
    }


def measure_forward(preset: str, repeats: int = 2) -> float:
    """Seconds for one multimodal forward at batch 1 on this CPU (best of `repeats`, after a warm-up)."""
    cfg = get_preset(preset)
    model = build_model(cfg, random_init=True).eval()
    batch = random_batch(cfg)
    times = []
    with torch.inference_mode():
        model(batch)
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - start)
    del model
    gc.collect()
    return min(times)


def run(presets=("lightweight", "full"), batch_size: int = 8, precision: str = "bf16", forward: bool = True) -> dict:
    results = {}
    for preset in presets:
        sizing_model = build_for_sizing(get_preset(preset))
        table = parameter_table(sizing_model)
        memory = estimate_training_memory(sizing_model, batch_size, precision)
        results[preset] = {
            "parameters_total": table["total"]["total"],
            "parameters_trainable": table["total"]["trainable"],
            "components": table,
            f"memory_estimate_gb_batch{batch_size}_{precision}": round(memory["total"] / 1024**3, 2),
        }
        if forward:
            results[preset]["cpu_forward_batch1_s"] = round(measure_forward(preset), 2)
        print(f"{preset:>12}: {results[preset]['parameters_total'] / 1e6:.1f}M parameters "
              f"({results[preset]['parameters_trainable'] / 1e6:.1f}M trainable), "
              f"training memory estimate {results[preset][f'memory_estimate_gb_batch{batch_size}_{precision}']} GB"
              + (f", CPU forward {results[preset]['cpu_forward_batch1_s']} s" if forward else ""))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["lightweight", "full"])
    run(tuple(parser.parse_args(argv).presets))


if __name__ == "__main__":
    main()
