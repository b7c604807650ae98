"""The torch Dataset over the preprocessing cache, its collate function and loader defaults.

Each item is a dict (the contract the model and the trainer are coded against):

    audio          float32 [num_samples]       mono 16 kHz window, zeros after audio_lengths
    audio_lengths  int64   []                  valid audio samples (the model masks the rest)
    frames         uint8   [T, 3, S, S]        face crops, RGB (the model normalises them)
    landmarks      float32 [T, 5, 2]           crop pixels: l-eye, r-eye, nose, l-mouth, r-mouth
    label          int64   []                  0..7 (fer_lib.EMOTIONS)
    actor          int64   []                  1..24
    path           str                         the cache file

Train-time augmentation (`augment=True`; off for evaluation, which is then deterministic):
- video, the same draw for all T frames of a clip: random resized crop (area 80-100%, aspect
  0.9-1.1) back to S x S, horizontal flip (p 0.5), colour jitter (brightness, contrast,
  saturation +-20%); the landmarks follow (a flip mirrors x and swaps left/right points);
- audio: gain (+-6 dB), white noise at 20-40 dB SNR (p 0.5), time shift of up to +-0.1 s
  (zeros enter; `audio_lengths` follows the shifted end of the real audio).
Random draws use torch's generator, which the DataLoader seeds per worker and per epoch.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fer_lib.data.index import DataError
from fer_lib.data.ravdess import NAME_PATTERN, RavdessNameError, parse_name
from fer_lib.landmarks import FLIP_LANDMARKS

KEYS = ("audio", "audio_lengths", "frames", "landmarks", "label", "actor", "path")


@dataclass(frozen=True)
class CachedClip:
    path: Path
    stem: str
    actor: int
    label: int
    vocal_channel: int


def list_cached_clips(cache_dir: str | Path, actors: Optional[Iterable[int]] = None) -> list[CachedClip]:
    """The clips in a cache (sorted by actor, then name), optionally only those of `actors`.

    Actor and label come from the file name (`parse_name`), so listing opens no file.
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        raise DataError(f"cache folder not found: {cache_dir}; build it with "
                        f"`python -m fer_lib.preprocess --data_dir DIR --cache_dir {cache_dir}`")
    wanted = None if actors is None else {int(a) for a in actors}
    clips = []
    for path in cache_dir.glob("*.npz"):
        if not NAME_PATTERN.match(path.stem):
            continue
        try:
            name = parse_name(path)
        except RavdessNameError:
            continue
        if wanted is None or name.actor in wanted:
            clips.append(CachedClip(path, path.stem, name.actor, name.label, name.vocal_channel))
    return sorted(clips, key=lambda c: (c.actor, c.stem))


class RavdessDataset(Dataset):
    """Items of the cache (module docstring). `actors`: keep only these (a split part)."""

    def __init__(self, cache_dir: str | Path, actors: Optional[Iterable[int]] = None, augment: bool = False,
                 clips: Optional[list[CachedClip]] = None):
        self.cache_dir = Path(cache_dir)
        self.clips = clips if clips is not None else list_cached_clips(self.cache_dir, actors)
        if not self.clips:
            which = "" if actors is None else f" for actors {sorted(set(int(a) for a in actors))}"
            raise DataError(f"no cached clip in {self.cache_dir}{which}; run `python -m fer_lib.preprocess` first")
        self.augment = augment

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> list[int]:
        return [c.label for c in self.clips]

    @property
    def actors(self) -> list[int]:
        return sorted({c.actor for c in self.clips})

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        with np.load(clip.path, allow_pickle=False) as data:
            audio = torch.from_numpy(np.array(data["audio"], np.float32))
            length = int(data["audio_length"])
            frames = torch.from_numpy(np.array(data["frames"], np.uint8))
            landmarks = torch.from_numpy(np.array(data["landmarks"], np.float32))
        if self.augment:
            frames, landmarks = augment_frames(frames, landmarks)
            audio, length = augment_audio(audio, length)
        return {
            "audio": audio,
            "audio_lengths": torch.tensor(length, dtype=torch.int64),
            "frames": frames,
            "landmarks": landmarks,
            "label": torch.tensor(clip.label, dtype=torch.int64),
            "actor": torch.tensor(clip.actor, dtype=torch.int64),
            "path": str(clip.path),
        }


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


def _uniform(low: float, high: float, generator: Optional[torch.Generator] = None) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


def augment_frames(frames: torch.Tensor, landmarks: torch.Tensor, generator: Optional[torch.Generator] = None,
                   scale: tuple[float, float] = (0.8, 1.0), ratio: tuple[float, float] = (0.9, 1.1),
                   flip_p: float = 0.5, jitter: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """One random resized crop / flip / colour jitter for all T frames; landmarks follow. uint8 in, uint8 out."""
    T, C, H, W = frames.shape
    area = H * W * _uniform(*scale, generator)
    aspect = float(np.exp(_uniform(np.log(ratio[0]), np.log(ratio[1]), generator)))
    w = int(round(min(W, np.sqrt(area * aspect))))
    h = int(round(min(H, np.sqrt(area / aspect))))
    x0 = int(torch.randint(0, W - w + 1, (), generator=generator))
    y0 = int(torch.randint(0, H - h + 1, (), generator=generator))
    x = frames[:, :, y0 : y0 + h, x0 : x0 + w].float()
    if (h, w) != (H, W):
        x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False, antialias=True)
    marks = (landmarks - torch.tensor([x0, y0], dtype=landmarks.dtype)) * torch.tensor([W / w, H / h], dtype=landmarks.dtype)
    if torch.rand((), generator=generator) < flip_p:
        x = x.flip(-1)
        marks = marks[:, list(FLIP_LANDMARKS)].clone()
        marks[..., 0] = W - marks[..., 0]
    if jitter > 0:
        brightness = _uniform(1 - jitter, 1 + jitter, generator)
        contrast = _uniform(1 - jitter, 1 + jitter, generator)
        saturation = _uniform(1 - jitter, 1 + jitter, generator)
        x = x * brightness
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean
        grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        x = (x - grey) * saturation + grey
    return x.round_().clamp_(0, 255).to(torch.uint8), marks


def augment_audio(audio: torch.Tensor, length: int, generator: Optional[torch.Generator] = None,
                  gain_db: float = 6.0, snr_db: tuple[float, float] = (20.0, 40.0), noise_p: float = 0.5,
                  max_shift: int = 1600) -> tuple[torch.Tensor, int]:
    """Gain, noise (inside the valid part) and a time shift; returns (audio, new valid length)."""
    n = audio.numel()
    out = audio * (10 ** (_uniform(-gain_db, gain_db, generator) / 20))
    if length > 0 and torch.rand((), generator=generator) < noise_p:
        power = out[:length].pow(2).mean().clamp_min(1e-10)
        snr = _uniform(*snr_db, generator)
        noise = torch.randn(length, generator=generator) * torch.sqrt(power / (10 ** (snr / 10)))
        out[:length] += noise
    shift = int(torch.randint(-max_shift, max_shift + 1, (), generator=generator))
    shift = max(shift, -(length - 1)) if length > 1 else max(shift, 0)
    if shift > 0:  # delay: zeros enter at the start
        out = torch.cat([out.new_zeros(shift), out[: n - shift]])
        length = min(n, length + shift)
    elif shift < 0:  # advance: the start is cut, zeros enter at the end
        out = torch.cat([out[-shift:], out.new_zeros(-shift)])
        length = max(1, length + shift)
    out[length:] = 0
    return out.contiguous(), length


# --------------------------------------------------------------------------------------------
# Batching and loading
# --------------------------------------------------------------------------------------------


def collate(batch: list[dict]) -> dict:
    """Stack the tensors of a list of items; `path` becomes a list of str."""
    out = {k: torch.stack([item[k] for item in batch]) for k in KEYS if k != "path"}
    out["path"] = [item["path"] for item in batch]
    return out


def default_num_workers() -> int:
    return min(4, os.cpu_count() or 1)


def make_loader(dataset: Dataset, batch_size: int, train: bool, num_workers: Optional[int] = None,
                pin_memory: Optional[bool] = None, persistent_workers: Optional[bool] = None,
                drop_last: bool = False, seed: Optional[int] = None, prefetch_factor: Optional[int] = None,
                **kwargs) -> DataLoader:
    """A DataLoader with Colab-friendly defaults.

    train: shuffle (seeded by `seed` when given). num_workers: min(4, cpu count); pin_memory when
    CUDA is available; persistent_workers when num_workers > 0; prefetch_factor 2.
    """
    num_workers = default_num_workers() if num_workers is None else num_workers
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    if num_workers > 0:
        kwargs["prefetch_factor"] = prefetch_factor or 2
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, num_workers=num_workers, collate_fn=collate,
                      pin_memory=pin_memory, persistent_workers=persistent_workers and num_workers > 0,
                      drop_last=drop_last, generator=generator, **kwargs)


# --------------------------------------------------------------------------------------------
# Colab: Drive -> local disk
# --------------------------------------------------------------------------------------------


def copy_cache_to_local(cache_dir: str | Path, local_dir: str | Path, progress: bool = True,
                        overwrite: bool = False) -> Path:
    """Copy a cache (on Drive) to a local folder; only files missing or changed (size or mtime) there.

    Many small files on Drive are slow to read; training reads the local copy. Each file is copied
    to a temporary name and renamed, so an interrupted copy resumes by calling again; the manifest
    goes last. A local folder holding a cache with another manifest hash raises DataError unless
    `overwrite=True` (then its cached clips are deleted first). Returns `local_dir` as a Path.
    """
    from fer_lib.preprocess import MANIFEST, TMP_SUFFIX, read_manifest

    src, dst = Path(cache_dir).expanduser(), Path(local_dir).expanduser()
    src_hash = read_manifest(src)["hash"]
    if (dst / MANIFEST).is_file():
        try:
            dst_hash = read_manifest(dst).get("hash")
        except DataError:
            dst_hash = None
        if dst_hash != src_hash:
            if not overwrite:
                raise DataError(f"{dst} holds a cache with other parameters (hash {dst_hash} vs {src_hash}); "
                                "use another local_dir or overwrite=True")
            for p in dst.glob("*.npz"):
                if NAME_PATTERN.match(p.stem):
                    p.unlink()
            (dst / MANIFEST).unlink()
    dst.mkdir(parents=True, exist_ok=True)
    for stray in dst.glob(f".*{TMP_SUFFIX}"):
        stray.unlink(missing_ok=True)
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix in (".npz", ".json", ".csv"))
    todo = []
    for p in files:
        target = dst / p.name
        st = p.stat()
        if target.is_file():
            tt = target.stat()
            if tt.st_size == st.st_size and int(tt.st_mtime) == int(st.st_mtime):
                continue
        todo.append(p)
    todo.sort(key=lambda p: p.name == MANIFEST)  # the manifest last
    for p in tqdm(todo, desc="copy cache", unit="file", disable=not progress or not todo):
        tmp = dst / f".{p.name}{TMP_SUFFIX}"
        shutil.copy2(p, tmp)
        os.replace(tmp, dst / p.name)
    return dst
