"""The order in which clips are seen: a pure function of (seed, epoch), the same on every process.

Exact resume needs the data order to be reproducible from the checkpoint alone, so the order never
touches a global RNG: each epoch's permutation comes from a torch.Generator seeded with
`seed + epoch` (as DistributedSampler does), and a run resumed mid-epoch regenerates that epoch's
permutation and leaves out the batches it already trained on (they are skipped here, as index
lists, so no clip is loaded for nothing).

With several processes the permutation is padded by repeating its start to a multiple of the
process count and dealt round robin, so every process runs the same number of batches (a DDP
requirement). Evaluation uses `pad=False`: each clip is seen exactly once across processes.
`keyed=True` yields `(epoch, index)` pairs, for datasets whose items depend on the epoch
(`TrainingItems`: per-clip augmentation seeds); the epoch travels with the index because
persistent DataLoader workers hold their own copy of the dataset.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch


class EpochBatches:
    """Batch sampler (`DataLoader(batch_sampler=...)`) over `num_items` clips for one process."""

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, pad: bool = True, keyed: bool = False):
        if num_items == 0:
            raise ValueError("no clips to sample from")
        self.num_items, self.batch_size, self.seed, self.shuffle = num_items, batch_size, seed, shuffle
        self.rank, self.world_size, self.pad, self.keyed = rank, world_size, pad, keyed
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Sample epoch `epoch`, leaving out its first `skip` batches (already trained on)."""
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        """This process's clip indices for the current epoch, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_items, generator=generator).tolist()
        else:
            order = list(range(self.num_items))
        if self.pad:
            total = math.ceil(self.num_items / self.world_size) * self.world_size
            order += order[: total - len(order)]
        return order[self.rank :: self.world_size]

    def batches_per_epoch(self) -> int:
        per_process = math.ceil(self.num_items / self.world_size) if self.pad else len(range(self.rank, self.num_items, self.world_size))
        return math.ceil(per_process / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.indices()
        for start in range(self.skip * self.batch_size, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            yield [(self.epoch, i) for i in batch] if self.keyed else batch

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.skip
