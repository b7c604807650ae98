"""Epoch time with and without the embedding cache, for a model shaped like `lightweight`.

    python -m bench.bench_train [--cache_dir CACHE] [--visual_layers 4] [--audio_layers 4]

The model is the `lightweight` preset with both encoders frozen, as in its first Colab stage, but
built from random weights (no download) at the real widths: a SigLIP2-base vision tower (768 wide,
12 heads, patch 16 at 224 px) and a Parakeet-0.6B encoder (1024 wide), each cut to a few layers so
that an end-to-end epoch fits a CPU, plus the preset's own small LFM2 fusion backbone. The full
towers have 12 and 24 layers, so on the real model the cache saves more than measured here.

Two runs on the same clips, augmentation off in both (the cache requires it for frozen branches):
- end to end: `embedding_cache=False`, the frozen encoders run on every clip of every epoch;
- cached: the encoders run once per clip (the build, timed separately), the epochs only run heads.
The ratio compares the mean epoch time (train + validation) of the two. Without --cache_dir,
synthetic clips are generated and preprocessed first (a few minutes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

from fer_lib.config import PARAKEET_ID, PRETRAINED_ARCHITECTURES, SIGLIP2_ID, TrainConfig, get_preset
from fer_lib.data.cache import cached_stems


def bench_model_config(visual_layers: int, audio_layers: int):
    cfg = get_preset("lightweight")
    cfg.visual.encoder_id, cfg.audio.encoder_id = None, None
    cfg.visual.encoder_config = {**PRETRAINED_ARCHITECTURES[SIGLIP2_ID], "num_hidden_layers": visual_layers}
    cfg.audio.encoder_config = {**PRETRAINED_ARCHITECTURES[PARAKEET_ID], "num_hidden_layers": audio_layers}
    return cfg


def synthetic_cache(root: Path, actors: int) -> Path:
    from fer_lib.data import synthetic
    from fer_lib.preprocess import preprocess

    synthetic.generate_dataset(root / "clips", actors=actors, seed=0)
    preprocess(root / "clips", root / "cache", progress=False, verbose=False)
    return root / "cache"


def run(cache_dir: Optional[str] = None, visual_layers: int = 4, audio_layers: int = 4, e2e_epochs: int = 1,
        cached_epochs: int = 3, batch_size: int = 8, actors: int = 3) -> dict:
    from fer_lib.train import train

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        cache = Path(cache_dir) if cache_dir else synthetic_cache(tmp, actors)
        model_cfg = bench_model_config(visual_layers, audio_layers)
        common = dict(batch_size=batch_size, grad_accum_steps=1, augment=False, num_workers=0,
                      early_stopping_patience=100)
        timings = {}
        for name, epochs, cached in (("end_to_end", e2e_epochs, False), ("cached", cached_epochs, True)):
            start = time.perf_counter()
            result = train(cache, tmp / "runs", model_cfg, TrainConfig(max_epochs=epochs, embedding_cache=cached, **common),
                           run_name=name, embedding_dir=tmp / "embeddings", show_progress=False)
            total = time.perf_counter() - start
            epoch_times = [row["epoch_time_s"] for row in result.metrics]
            # Everything but the epochs: model build, checkpoints, and for the cached run the cache build.
            timings[name] = {"epoch_s": statistics.mean(epoch_times), "overhead_s": total - sum(epoch_times)}
        figures = {
            "model": f"lightweight-shaped, random init: SigLIP2-base width x {visual_layers} layers, "
                     f"Parakeet-0.6B width x {audio_layers} layers (both frozen), small LFM2",
            "clips_in_cache": len(cached_stems(cache)),
            "batch_size": batch_size,
            "epoch_s_end_to_end": round(timings["end_to_end"]["epoch_s"], 2),
            "epoch_s_cached": round(timings["cached"]["epoch_s"], 3),
            "run_overhead_s_end_to_end": round(timings["end_to_end"]["overhead_s"], 1),
            "run_overhead_s_cached": round(timings["cached"]["overhead_s"], 1),
            "epoch_speedup_cached": round(timings["end_to_end"]["epoch_s"] / timings["cached"]["epoch_s"], 1),
        }
    for key, value in figures.items():
        print(f"{key:>26}: {value}")
    return figures


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache_dir", help="a preprocessing cache (default: generate synthetic clips)")
    parser.add_argument("--visual_layers", type=int, default=4)
    parser.add_argument("--audio_layers", type=int, default=4)
    parser.add_argument("--actors", type=int, default=3, help="synthetic actors when no --cache_dir (8 clips each)")
    args = parser.parse_args(argv)
    run(args.cache_dir, args.visual_layers, args.audio_layers, actors=args.actors)


if __name__ == "__main__":
    main()
