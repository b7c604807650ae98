"""Frozen-encoder outputs computed once per clip, so that later epochs run only what trains.

With the encoders frozen (the `lightweight` and `full` presets) nearly all the compute of an epoch
is SigLIP2 over 16 frames and Parakeet over 3 s of audio, and it gives the same answer every epoch
unless the input is augmented. A modality's encoder output is therefore cached when the modality is
used, its encoder is frozen and `TrainConfig.embedding_cache` is on. Its raw input is then not
augmented; its cached features are instead masked differently every epoch (`fer_lib.training.items`).

One store per modality: `<embedding_dir>/<modality>-<key>/`, on the runtime's local disk

    features.npy       float16 [clips, *feature shape], memory-mapped: one large file, not one per clip
                       (audio: [K, 38, H] encoder frames; visual: [K, 16, 68, D] ROI tokens; K = the
                       encoder layers the branch's layer mix reads, `mixed_layers`)
    audio_lengths.npy  int64 [clips]: the audio head masks padded frames with it
    meta.json          the clip stems in row order, shapes, and what the key was made from

Per clip that is K x 38 x 1024 x 2 bytes of Parakeet-0.6B frames and K x 16 x 68 x 768 x 2 bytes of
SigLIP2-base tokens: 0.93 MB + 10.0 MB with the presets' 12 and 6 layers, 15.8 GB for 1440 clips
(computed: `fer_lib.models.sizes.embedding_cache_bytes`; README lists it per preset).

The key hashes everything the features depend on: the modality, the preprocessing manifest hash (so
the clips and their windows), the input and front-end settings, the mixed layers, and the fingerprint
of the frozen encoder weights themselves (`fer_lib.models.fingerprint`), so a random-init encoder or a
changed checkpoint never reads another's features. It covers every clip of the preprocessing cache, so one
store serves every split and fold. Building is shared between processes (each computes every
N-th clip into the same memory map), written under `<name>.partial/` and renamed when complete:
an interrupted build starts over and is never mistaken for a finished one. Two runs must not build
the same store at the same moment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from fer_lib.config import ModelConfig
from fer_lib.data.dataset import RavdessDataset, collate, make_loader
from fer_lib.models import EmotionModel
from fer_lib.models.fingerprint import weights_fingerprint
from fer_lib.training.sampler import EpochBatches

FORMAT = 3
ENCODER = {"audio": "audio_encoder", "visual": "visual_encoder"}  # modality -> its pretrained part
# The fields of each modality's config that change what forward_features computes (the rest are head settings).
FEATURE_FIELDS = {
    "audio": ("encoder_id", "encoder_revision", "encoder_config", "mixed_layers", "num_mel_bins", "n_fft",
              "win_length", "hop_length"),
    "visual": ("encoder_id", "encoder_revision", "encoder_config", "mixed_layers", "roi_tokens"),
}


def cached_modalities(model: EmotionModel, modalities: tuple[str, ...], enabled: bool) -> tuple[str, ...]:
    """The modalities whose encoder output can be cached: used, encoder frozen, cache enabled."""
    return tuple(m for m in modalities if enabled and ENCODER[m] in model.frozen)


class FeatureStore:
    """One modality's cached features, opened read-only and memory-mapped on first access in each process."""

    def __init__(self, path: Path):
        self.path = path
        meta = json.loads((path / "meta.json").read_text())
        self.modality = meta["modality"]
        self.row = {stem: i for i, stem in enumerate(meta["stems"])}
        self._features: Optional[np.ndarray] = None
        self._lengths: Optional[np.ndarray] = None

    def __getstate__(self):
        # DataLoader workers receive a pickled copy: send the path, not a copy of the mapped array.
        return {**self.__dict__, "_features": None, "_lengths": None}

    def get(self, stem: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features float16, audio_lengths int64 scalar) of one clip."""
        if self._features is None:
            self._features = np.load(self.path / "features.npy", mmap_mode="r")
            self._lengths = np.load(self.path / "audio_lengths.npy")
        row = self.row[stem]
        return torch.from_numpy(np.array(self._features[row])), torch.tensor(int(self._lengths[row]))


def store_key(modality: str, model: EmotionModel, model_cfg: ModelConfig, manifest_hash: str) -> str:
    modality_cfg = dataclasses.asdict(getattr(model_cfg, modality))
    payload = {
        "format": FORMAT,
        "modality": modality,
        "manifest": manifest_hash,
        "input": dataclasses.asdict(model_cfg.input),
        "config": {name: modality_cfg[name] for name in FEATURE_FIELDS[modality]},
        "weights": weights_fingerprint(model.part_module(ENCODER[modality])),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:16]


def open_or_build(modality: str, root: str | Path, model: EmotionModel, model_cfg: ModelConfig, cache_dir: str | Path,
                  manifest_hash: str, accelerator: Accelerator, batch_size: int, num_workers: int,
                  progress: bool = True) -> FeatureStore:
    """The store of `modality` for this encoder and preprocessing cache, computed first if it does not exist."""
    path = Path(root) / f"{modality}-{store_key(modality, model, model_cfg, manifest_hash)}"
    if not (path / "meta.json").is_file():
        _build(modality, path, model, RavdessDataset(cache_dir), accelerator, batch_size, num_workers, progress)
    return FeatureStore(path)


@torch.no_grad()
def _build(modality: str, path: Path, model: EmotionModel, dataset: RavdessDataset, accelerator: Accelerator,
           batch_size: int, num_workers: int, progress: bool) -> None:
    partial = path.with_name(path.name + ".partial")
    encode = _encoder(modality, model)
    was_training = model.training
    model.eval()
    shape = tuple(_run(encode, collate([dataset[0]]), accelerator).shape[1:])
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        np.lib.format.open_memmap(partial / "features.npy", mode="w+", dtype=np.float16, shape=(len(dataset), *shape))
        np.save(partial / "audio_lengths.npy", np.zeros(len(dataset), np.int64))
    accelerator.wait_for_everyone()

    sampler = EpochBatches(len(dataset), batch_size, shuffle=False, rank=accelerator.process_index,
                           world_size=accelerator.num_processes, pad=False)
    # make_loader's private generator: a run that builds the store continues as one that finds it built.
    loader = make_loader(dataset, sampler, num_workers)
    features = np.load(partial / "features.npy", mmap_mode="r+")
    lengths = np.zeros(len(dataset), np.int64)
    rows = iter(sampler.indices())
    bar = tqdm(loader, desc=f"caching {modality} features", unit="batch",
               disable=not (progress and accelerator.is_local_main_process))
    for batch in bar:
        out = _run(encode, batch, accelerator).to(torch.float16).cpu().numpy()
        index = [next(rows) for _ in range(len(out))]
        features[index] = out
        lengths[index] = batch["audio_lengths"].numpy()
    features.flush()
    del features
    if accelerator.num_processes > 1:  # every process filled other rows of `lengths`: add them up
        lengths = np.sum(accelerator.gather_object([lengths]), axis=0)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        np.save(partial / "audio_lengths.npy", lengths)
        meta = {"modality": modality, "stems": [clip.stem for clip in dataset.clips], "shape": list(shape),
                "dtype": "float16", "format": FORMAT}
        (partial / "meta.json").write_text(json.dumps(meta, indent=1))
        partial.rename(path)
    accelerator.wait_for_everyone()
    model.train(was_training)


def _encoder(modality: str, model: EmotionModel):
    if modality == "audio":
        return lambda batch: model.audio.forward_features(batch["audio"], batch["audio_lengths"])
    return lambda batch: model.visual.forward_features(batch["frames"], batch["landmarks"])


def _run(encode, batch: dict, accelerator: Accelerator) -> torch.Tensor:
    with accelerator.autocast():
        return encode({k: v.to(accelerator.device) for k, v in batch.items() if isinstance(v, torch.Tensor)})
