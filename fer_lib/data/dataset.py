"""The torch Dataset over the preprocessing cache, the one collate function and the one DataLoader builder.

Each item is a dict (the contract the model and the trainer are coded against):

    audio          float32 [num_samples]       mono 16 kHz window, zeros after audio_lengths
    audio_lengths  int64   []                  valid audio samples (the model masks the rest)
    frames         uint8   [T, 3, S, S]        face crops, RGB (the model normalises them)
    landmarks      float32 [T, 5, 2]           crop pixels: l-eye, r-eye, nose, l-mouth, r-mouth
    label          int64   []                  0..7 (fer_lib.EMOTIONS)
    actor          int64   []                  1..24
    path           str                         the clip in the cache: `<cache>/actor_AA.shard/<stem>.npz`
                                               (shard, then member), so `Path(path).stem` is the clip's stem

Items are exactly what the cache holds: augmentation happens in `fer_lib.training.items`, seeded per
(seed, epoch, clip), so that there is one augmentation path and it survives a resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from fer_lib.data import cache
from fer_lib.data.index import DataError
from fer_lib.data.ravdess import RavdessClip


class RavdessDataset(Dataset):
    """The cached clips (of `actors`, a split part, when given; or exactly `clips`) as items (module docstring)."""

    def __init__(self, cache_dir: str | Path, actors: Optional[Iterable[int]] = None,
                 clips: Optional[list[RavdessClip]] = None):
        self.cache_dir = Path(cache_dir)
        self.clips = clips if clips is not None else cache.list_clips(self.cache_dir, actors)
        if not self.clips:
            which = "" if actors is None else f" for actors {sorted(set(int(a) for a in actors))}"
            raise DataError(f"no cached clip in {self.cache_dir}{which}; run `python -m fer_lib.preprocess` first")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> list[int]:
        return [c.label for c in self.clips]

    @property
    def actors(self) -> list[int]:
        return sorted({c.actor for c in self.clips})

    def entry(self, i: int) -> dict:
        """The arrays of clip i as the cache holds them (`fer_lib.data.cache.read_entry`)."""
        return cache.read_entry(self.clips[i].path)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        entry = self.entry(i)
        return {
            "audio": torch.from_numpy(entry["audio"].astype(np.float32, copy=False)),
            "audio_lengths": torch.tensor(int(entry["audio_length"]), dtype=torch.int64),
            "frames": torch.from_numpy(entry["frames"].astype(np.uint8, copy=False)),
            "landmarks": torch.from_numpy(entry["landmarks"].astype(np.float32, copy=False)),
            "label": torch.tensor(clip.label, dtype=torch.int64),
            "actor": torch.tensor(clip.actor, dtype=torch.int64),
            "path": str(clip.path),
        }


def collate(items: list[dict]) -> dict:
    """Stack every tensor field the items carry; other fields (the paths) become lists."""
    return {k: torch.stack([item[k] for item in items]) if isinstance(items[0][k], torch.Tensor)
            else [item[k] for item in items] for k in items[0]}


def default_num_workers() -> int:
    return min(4, os.cpu_count() or 1)


def make_loader(dataset: Dataset, batches: Union[int, Sampler], num_workers: Optional[int] = None) -> DataLoader:
    """The one DataLoader fer_lib builds.

    batches: a batch sampler (the trainer's `EpochBatches`: its own order, sharded over processes), or
    a batch size for batches of the clips in order (evaluation). num_workers: default min(4, cores);
    workers persist between epochs. Memory is pinned when CUDA is available. The loader gets a
    private generator: otherwise each epoch's iterator would draw its worker seeds from the global
    RNG, which dropout also uses, and a resumed run would drift from an uninterrupted one.
    """
    num_workers = default_num_workers() if num_workers is None else num_workers
    if isinstance(batches, int):
        batches = BatchSampler(SequentialSampler(dataset), batches, drop_last=False)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
                      prefetch_factor=2 if num_workers > 0 else None, generator=torch.Generator())
