"""Train-time augmentation of one clip's raw inputs: pure functions of the input and a torch.Generator.

- video, the same draw for all T frames of a clip: random resized crop (area 80-100%, aspect
  0.9-1.1) back to S x S, horizontal flip (p 0.5), colour jitter (brightness, contrast,
  saturation +-20%); the landmarks follow (a flip mirrors x and swaps left/right points);
- audio: gain (+-6 dB), white noise at 20-40 dB SNR (p 0.5), time shift of up to +-0.1 s
  (zeros enter; the valid length follows the shifted end of the real audio);
- cached encoder features (when the embedding cache replaces the raw input, which then cannot be
  augmented): SpecAugment-style time masking, two spans of up to 10% of the positions zeroed in every
  layer alike (`mask_spans`: audio frames, visual frames), and token dropout, each ROI token of each
  frame zeroed with p 0.1 (`mask_tokens`).

Each call draws only from the generator it is given, so `fer_lib.training.items` can make a
clip's augmentation a function of (seed, epoch, clip): exactly reproducible after a resume.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from fer_lib.landmarks import FLIP_LANDMARKS


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


def mask_spans(features: torch.Tensor, axis: int, generator: Optional[torch.Generator] = None, spans: int = 2,
               max_fraction: float = 0.1) -> torch.Tensor:
    """Zero `spans` random spans, each of up to `max_fraction` of the positions along `axis` (all else alike)."""
    n = features.shape[axis]
    keep = torch.ones(n)
    for _ in range(spans):
        width = int(torch.randint(0, max(1, int(max_fraction * n)) + 1, (), generator=generator))
        start = int(torch.randint(0, n - width + 1, (), generator=generator))
        keep[start : start + width] = 0
    shape = [1] * features.ndim
    shape[axis] = n
    return features * keep.view(shape).to(features.dtype)


def mask_tokens(features: torch.Tensor, generator: Optional[torch.Generator] = None, p: float = 0.1) -> torch.Tensor:
    """(..., T, R, D) tokens: zero each of the T x R tokens with probability `p` (all leading layers alike)."""
    frames, tokens = features.shape[-3:-1]
    keep = torch.rand(frames, tokens, generator=generator) >= p  # (T, R)
    return features * keep[..., None].to(features.dtype)
