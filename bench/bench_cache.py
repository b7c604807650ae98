"""The compact cache (format 2: one shard per actor, JPEG crops, int16 audio) against format 1 (one raw .npz per clip).

    python -m bench.bench_cache [--clips 24] [--batch_size 8] [--epochs 3]

Clips: synthetic RAVDESS-format clips with a real face (the astronaut photograph of scikit-image,
H.264 at 1280x720, `bench.bench_preprocess.make_clips`), each run once through
`fer_lib.data.preprocessing.process_clip`. From the same arrays both caches are written: format 2
through `fer_lib.data.cache` (what preprocessing writes), format 1 as it stored them (np.savez of
the raw arrays, one file per clip; its reader, `Format1Dataset`, lives here for this comparison only).

Figures:
- mb_per_clip: shard bytes / clips (target <= 0.6); format1_mb_per_clip the same for format 1;
- psnr_db_mean / psnr_db_min: decoded crops against the raw crops, over all frames of all clips
  (target >= 38);
- decode_cpu_ms_per_clip: CPU time of `cache.read_entry` of one clip, median (JPEG decode + int16 ->
  float, one torch thread as in a DataLoader worker); format1_load_cpu_ms_per_clip: the same for np.load of one format-1 file; both
  from local disk with a warm page cache. CPU time, not wall time, so that a shared machine's load
  does not count;
- epoch_s / format1_epoch_s: an epoch of cached training, the best of `--epochs` (the two formats
  alternate, after a warm-up epoch each): the trainer's DataLoader (`make_loader`, default workers)
  over every clip into the `tiny` model, forward + backward + AdamW at `--batch_size`, the same order
  for both; loader_epoch_s / format1_loader_epoch_s: the same DataLoader without the model (the data
  path alone). Wall time: these overlap the loader's worker processes with the model.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

TARGET_MB_PER_CLIP = 0.6
TARGET_PSNR_DB = 38.0


def psnr(decoded: np.ndarray, raw: np.ndarray) -> float:
    mse = np.mean((decoded.astype(np.float64) - raw.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


def build_caches(paths: list[Path], work: Path) -> tuple[Path, Path, list[float]]:
    """(format-2 cache, format-1 folder, PSNR of each frame) from one processing of each clip."""
    import torch

    from fer_lib.config import PreprocessConfig
    from fer_lib.data import cache
    from fer_lib.data.faces import FaceTracker
    from fer_lib.data.preprocessing import TORCH_THREADS, process_clip

    previous = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)  # as a preprocessing worker
    config = PreprocessConfig()
    tracker = FaceTracker(config).warmup()
    shards, format1 = work / "format2", work / "format1"
    format1.mkdir(parents=True)
    manifest = cache.prepare(shards, config)
    members: dict[int, dict[str, bytes]] = {}
    psnrs = []
    for path in paths:
        arrays, _ = process_clip(path, config, tracker)
        data = cache.encode_entry(arrays, cache.source_key(path))
        members.setdefault(int(arrays["actor"]), {})[path.stem] = data
        psnrs += [psnr(d, r) for d, r in zip(cache.decode_entry(data)["frames"], arrays["frames"])]
        np.savez(format1 / f"{path.stem}.npz", **arrays)
    for actor, clips in members.items():
        cache.write_shard(shards, actor, clips, manifest["hash"])
    torch.set_num_threads(previous)
    return shards, format1, psnrs


def median_cpu_ms(read, items) -> float:
    """Median CPU milliseconds of read(item), with one torch thread (as in a DataLoader worker)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    for item in items:
        start = time.process_time()
        read(item)
        times.append(time.process_time() - start)
    torch.set_num_threads(previous)
    return 1000 * statistics.median(times)


def epoch_seconds(datasets: dict, batch_size: int, epochs: int, train: bool) -> dict:
    """name -> best seconds of `epochs` epochs over each dataset, the datasets alternating after a warm-up
    epoch each: the loader, and with `train` the tiny model's steps."""
    import torch

    from fer_lib.config import get_preset
    from fer_lib.data.dataset import make_loader
    from fer_lib.models import build_model

    runs = {}
    for name, dataset in datasets.items():
        torch.manual_seed(0)
        model = build_model(get_preset("tiny")).train() if train else None
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if train else None
        runs[name] = (make_loader(dataset, batch_size), model, optimizer)
    times = {name: [] for name in datasets}
    for epoch in range(epochs + 1):
        for name, (loader, model, optimizer) in runs.items():
            start = time.perf_counter()
            for batch in loader:
                if train:
                    model(batch).loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            if epoch:
                times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def format1_dataset(folder: Path, clips):
    from fer_lib.data.dataset import RavdessDataset

    class Format1Dataset(RavdessDataset):
        """Format 1's reader: the clip's own raw .npz (np.load, every array stored as the model takes it)."""

        def entry(self, i: int) -> dict:
            with np.load(folder / f"{self.clips[i].stem}.npz") as stored:
                return {name: stored[name] for name in stored.files}

    return Format1Dataset(folder, clips=clips)


def run(n_clips: int = 24, batch_size: int = 8, epochs: int = 3, work_dir: Optional[str] = None) -> dict:
    from bench.bench_preprocess import make_clips
    from fer_lib.data import cache
    from fer_lib.data.dataset import RavdessDataset

    with tempfile.TemporaryDirectory(prefix="bench_cache_", dir=work_dir) as tmp:
        work = Path(tmp)
        paths = make_clips(work / "clips", n_clips)
        shards, format1, psnrs = build_caches(paths, work)
        clips = cache.list_clips(shards)
        new, old = RavdessDataset(shards), format1_dataset(format1, clips)
        mb = sum(p.stat().st_size for p in shards.glob("*.shard")) / len(clips) / 1e6
        mb_old = sum(p.stat().st_size for p in format1.glob("*.npz")) / len(clips) / 1e6
        datasets = {"format2": new, "format1": old}
        loader_epochs = epoch_seconds(datasets, batch_size, epochs, train=False)
        training_epochs = epoch_seconds(datasets, batch_size, epochs, train=True)
        figures = {
            "clips": len(clips),
            "clip": "synthetic RAVDESS-format, a real face photograph, 1280x720 H.264, 3.5 s",
            "jpeg_quality": cache.JPEG_QUALITY,
            "mb_per_clip": round(mb, 3),
            "format1_mb_per_clip": round(mb_old, 3),
            "target_mb_per_clip": TARGET_MB_PER_CLIP,
            "psnr_db_mean": round(statistics.mean(psnrs), 2),
            "psnr_db_min": round(min(psnrs), 2),
            "target_psnr_db": TARGET_PSNR_DB,
            "decode_cpu_ms_per_clip": round(median_cpu_ms(new.entry, range(len(new))), 2),
            "format1_load_cpu_ms_per_clip": round(median_cpu_ms(old.entry, range(len(old))), 2),
            "batch_size": batch_size,
            "loader_epoch_s": round(loader_epochs["format2"], 3),
            "format1_loader_epoch_s": round(loader_epochs["format1"], 3),
            "epoch_s": round(training_epochs["format2"], 3),
            "format1_epoch_s": round(training_epochs["format1"], 3),
        }
    for key, value in figures.items():
        print(f"{key:>26}: {value}")
    return figures


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cache", description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.clips, args.batch_size, args.epochs)


if __name__ == "__main__":
    main()
