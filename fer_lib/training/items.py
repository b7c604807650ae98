"""What the loop feeds the model: cache items, trimmed to the used modalities, with cached features and
augmentation that is a pure function of (seed, epoch, clip).

The batch sampler (`EpochBatches(keyed=True)`) yields `(epoch, index)` pairs rather than bare indices, and each
clip's augmentation draws from its own generator seeded by (seed, epoch, index). So the augmented
input of a clip does not depend on which DataLoader worker loads it, on how many batches were
skipped when resuming mid-epoch, or on the model's own use of the global RNG (dropout): a resumed
run sees exactly the inputs an uninterrupted one would. This is fer_lib's only augmentation path
(the functions are in `fer_lib.data.augment`).

A modality with cached encoder features gets `<modality>_features` in place of its raw input. Its
raw input can then not be augmented, so with `augment` its features are masked instead, again per
(seed, epoch, clip): audio (K, L, H) loses two spans of encoder frames, visual (K, T, R, D) two spans
of frames and a tenth of its ROI tokens, every layer alike. Each epoch therefore feeds the model
another view of a cached clip. When every used modality is cached, no cache entry is opened at all:
label and actor come from the name.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from fer_lib.data.augment import augment_audio, augment_frames, mask_spans, mask_tokens
from fer_lib.data.dataset import RavdessDataset
from fer_lib.training.embedding_cache import FeatureStore

RAW_INPUTS = {"audio": ("audio",), "visual": ("frames", "landmarks")}


class TrainingItems(Dataset):
    def __init__(self, clips: RavdessDataset, modalities: tuple[str, ...], stores: dict[str, FeatureStore],
                 augment: bool, seed: int):
        self.clips, self.modalities, self.stores, self.augment, self.seed = clips, modalities, stores, augment, seed
        self.augmented = tuple(m for m in modalities if augment and m not in stores)  # raw inputs

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        clip = self.clips.clips[index]
        if all(m in self.stores for m in self.modalities):
            item = {"label": torch.tensor(clip.label), "actor": torch.tensor(clip.actor), "path": str(clip.path)}
        else:
            item = self.clips[index]
        generator = self._generator(epoch, index) if self.augment else None
        if "visual" in self.augmented:
            item["frames"], item["landmarks"] = augment_frames(item["frames"], item["landmarks"], generator)
        if "audio" in self.augmented:
            audio, length = augment_audio(item["audio"], int(item["audio_lengths"]), generator)
            item["audio"], item["audio_lengths"] = audio, torch.tensor(length)
        for modality, store in self.stores.items():
            features, lengths = store.get(clip.stem)
            if self.augment:
                features = mask_spans(features, 1, generator)  # time: audio (K, L, H), visual (K, T, R, D)
                if modality == "visual":
                    features = mask_tokens(features, generator)
            item[f"{modality}_features"] = features
            item.setdefault("audio_lengths", lengths)  # a loaded item has its own (augmented) lengths
        for modality, keys in RAW_INPUTS.items():
            if modality not in self.modalities or modality in self.stores:
                for name in keys:
                    item.pop(name, None)
        return item

    def _generator(self, epoch: int, index: int) -> torch.Generator:
        seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)
        return torch.Generator().manual_seed(seed)

