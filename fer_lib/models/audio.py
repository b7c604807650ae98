"""Audio branch: waveform -> log-mel -> FastConformer (Parakeet encoder) -> segment attention pooling.

    audio (B, S) float, 16 kHz mono, S = 48000 for a 3 s window
      LogMelFrontend       -> (B, F, 80)   F = S // hop + 1 = 301 frames of 10 ms, normalised per clip
      ParakeetEncoder      -> (B, K, L, H) K of its layer outputs, 8x subsampling:
                                           L = 38 frames of 80 ms                      <- forward_features
      LayerMix             -> (B, L, H)    their learned weighted sum (fer_lib.models.layer_mix)
      SegmentAttentionPool -> (B, 8, H)    segment i = i-th equal slice of the window
      projection           -> (B, 8, output_dim)                                       <- forward_head

`forward_features` is the frozen-encoder part whose output the embedding cache stores: one fixed-shape
tensor per clip. The padding mask it needs is recomputed from `audio_lengths`, so the cache holds no mask.

A pretrained encoder understands only features made as in its training, so `check_frontend` compares
this front end with the encoder checkpoint's own preprocessor configuration (at the pinned revision)
when the encoder is loaded: sampling rate, mel bins, FFT size, window, hop, pre-emphasis, normalisation.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import ParakeetEncoder, ParakeetFeatureExtractor
from transformers.audio_utils import mel_filter_bank

from fer_lib.config import AudioConfig, ConfigError
from fer_lib.errors import one_line
from fer_lib.models.layer_mix import LayerMix, select_layers, stack_layers
from fer_lib.models.pooling import AttentionPool
from fer_lib.models.pretrained import PretrainedLoadError

# Fixed by how the Parakeet encoders were trained (NeMo's preprocessor, mirrored by transformers'
# ParakeetFeatureExtractor); a pretrained encoder only understands features made exactly this way.
PREEMPHASIS = 0.97
LOG_GUARD = 2.0**-24  # added before the log so silence gives a finite value
NORM_EPSILON = 1e-5  # added to the per-clip std
NORMALISATION = "per_feature"  # each mel bin to zero mean, unit variance over the clip (NeMo's name for it)


def check_frontend(cfg: AudioConfig, sample_rate: int, source: str, revision: Optional[str] = None) -> None:
    """ConfigError (one line) when LogMelFrontend would not make the features the encoder at `source` was
    trained on, as its preprocessor_config.json (ParakeetFeatureExtractor) describes them."""
    try:
        extractor = ParakeetFeatureExtractor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise PretrainedLoadError(
            f"cannot read the audio front end (preprocessor_config.json) of {source!r}: {one_line(exc)}"
        ) from exc
    ours = {"sampling rate": sample_rate, "mel bins": cfg.num_mel_bins, "n_fft": cfg.n_fft, "window": cfg.win_length,
            "hop": cfg.hop_length, "pre-emphasis": PREEMPHASIS, "normalisation": NORMALISATION}
    theirs = {"sampling rate": extractor.sampling_rate, "mel bins": extractor.feature_size, "n_fft": extractor.n_fft,
              "window": extractor.win_length, "hop": extractor.hop_length, "pre-emphasis": extractor.preemphasis,
              "normalisation": getattr(extractor, "normalize", NORMALISATION)}  # the extractor always normalises per bin
    differences = [f"{name} {ours[name]} vs {theirs[name]}" for name in ours if ours[name] != theirs[name]]
    if differences:
        raise ConfigError(f"the audio front end does not match the preprocessor of {source!r}"
                          f"{f' at {revision}' if revision else ''} (ours vs its): {'; '.join(differences)}")


class LogMelFrontend(nn.Module):
    """Normalised log-mel features, numerically those of transformers' ParakeetFeatureExtractor.

    Pre-emphasis, a centred STFT (symmetric Hann window of `win_length` inside `n_fft`, zero padding),
    power spectrum, Slaney mel filter bank, log with a small guard, then per-clip normalisation of each
    mel bin to zero mean and unit (unbiased) variance over the valid frames only; padded frames are
    zero. Written in torch so it runs on the GPU inside the model, and computed in float32 even under
    autocast: the log of a bf16 power spectrum loses the quiet bins the normalisation then amplifies.
    """

    def __init__(self, cfg: AudioConfig, sample_rate: int):
        super().__init__()
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.win_length = cfg.win_length
        mel_filters = mel_filter_bank(
            num_frequency_bins=cfg.n_fft // 2 + 1,
            num_mel_filters=cfg.num_mel_bins,
            min_frequency=0.0,
            max_frequency=sample_rate / 2,
            sampling_rate=sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        # Derived from the config, so not saved in checkpoints.
        self.register_buffer("mel_filters", torch.tensor(mel_filters.T, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=False), persistent=False)

    def num_valid_frames(self, audio_lengths: torch.Tensor) -> torch.Tensor:
        """Feature frames computed from real samples only (the extractor's rule: the last, half-padded frame is not)."""
        return audio_lengths // self.hop_length

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) waveform, (B,) valid sample counts -> features (B, F, mels), valid-frame mask (B, F)."""
        with torch.autocast(device_type=audio.device.type, enabled=False):
            audio = audio.float()
            valid_samples = torch.arange(audio.shape[1], device=audio.device) < audio_lengths[:, None]  # (B, S)
            audio = torch.cat([audio[:, :1], audio[:, 1:] - PREEMPHASIS * audio[:, :-1]], dim=1)
            audio = audio.masked_fill(~valid_samples, 0.0)

            spectrum = torch.stft(
                audio,
                self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window.float(),
                center=True,
                pad_mode="constant",
                return_complex=True,
            )  # (B, n_fft // 2 + 1, F)
            power = spectrum.real.square() + spectrum.imag.square()
            log_mel = torch.log(self.mel_filters.float() @ power + LOG_GUARD).transpose(1, 2)  # (B, F, mels)

            num_frames = self.num_valid_frames(audio_lengths)  # (B,)
            frame_mask = torch.arange(log_mel.shape[1], device=audio.device) < num_frames[:, None]  # (B, F)
            valid = frame_mask[..., None]
            count = num_frames[:, None, None].to(log_mel.dtype)  # (B, 1, 1), clamped: clips under 2 frames stay finite
            mean = (log_mel * valid).sum(dim=1, keepdim=True) / count.clamp(min=1)
            variance = ((log_mel - mean).square() * valid).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
            features = (log_mel - mean) / (variance.sqrt() + NORM_EPSILON) * valid
        return features, frame_mask


class SegmentAttentionPool(nn.Module):
    """Pools encoder frames into `num_segments` time segments, attending only within a segment.

    Segment i is the i-th equal slice of the window, the same stretch of time as visual segment i.
    The L encoder frames tile the window evenly (80 ms each), so frame j belongs to the segment that
    contains its centre, floor((j + 0.5) * num_segments / L): 38 frames give segments of 4 or 5 frames.
    Frames computed from padding are masked out; a segment that is all padding mixes no frames.
    """

    def __init__(self, dim: int, num_heads: int, num_segments: int):
        super().__init__()
        self.num_segments = num_segments
        self.pool = AttentionPool(dim, num_heads)

    def segment_mask(self, num_frames: int, device: torch.device) -> torch.Tensor:
        """(num_segments, L) True where frame j lies in segment i."""
        frame_segment = ((torch.arange(num_frames, device=device) + 0.5) * self.num_segments / num_frames).long()
        return frame_segment[None, :] == torch.arange(self.num_segments, device=device)[:, None]

    def forward(self, frames: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, L, D) frames, (B, L) valid mask -> (B, num_segments, D)."""
        batch, num_frames, _ = frames.shape
        mask = self.segment_mask(num_frames, frames.device).expand(batch, -1, -1)  # (B, S, L)
        if frame_mask is not None:
            mask = mask & frame_mask[:, None, :]
        return self.pool(frames, mask)


class AudioBranch(nn.Module):
    """Waveform -> (B, num_segments, output_dim): log-mel, FastConformer encoder, segment pooling, projection."""

    def __init__(self, cfg: AudioConfig, encoder: ParakeetEncoder, sample_rate: int, num_segments: int):
        super().__init__()
        if encoder.config.num_mel_bins != cfg.num_mel_bins:
            raise ConfigError(
                f"the audio encoder takes {encoder.config.num_mel_bins} mel bins "
                f"but audio.num_mel_bins is {cfg.num_mel_bins}"
            )
        width = encoder.config.hidden_size
        if width % cfg.pool_heads:
            raise ConfigError(f"audio.pool_heads ({cfg.pool_heads}) must divide the encoder width {width}")
        self.frontend = LogMelFrontend(cfg, sample_rate)
        self.encoder = encoder
        self.layer_mix = LayerMix(select_layers(encoder.config.num_hidden_layers, cfg.mixed_layers))
        self.segment_pool = SegmentAttentionPool(width, cfg.pool_heads, num_segments)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(cfg.dropout)
        self.projection = nn.Linear(width, cfg.output_dim)

    def forward_features(self, audio: torch.Tensor, audio_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, S) waveform -> the mixed layers' hidden states (B, K, L, H); L = 38 for 48000 samples."""
        audio_lengths = self._lengths_or_full(audio, audio_lengths)
        features, frame_mask = self.frontend(audio, audio_lengths)  # (B, F, mels), (B, F)
        features = features.to(self.encoder.dtype)
        out = self.encoder(input_features=features, attention_mask=frame_mask.long(), output_hidden_states=True)
        return stack_layers(out.hidden_states, self.layer_mix.layers)  # (B, K, L, H)

    def forward_head(self, features: torch.Tensor, audio_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Layer hidden states (B, K, L, H) -> segment embeddings (B, num_segments, output_dim)."""
        features = self.layer_mix(features.to(self.projection.weight.dtype))  # cached features arrive as fp16
        frame_mask = None if audio_lengths is None else self.encoder_frame_mask(audio_lengths, features.shape[1])
        segments = self.segment_pool(features, frame_mask)  # (B, S, H)
        return self.projection(self.dropout(self.norm(segments)))

    def forward(self, audio: torch.Tensor, audio_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(audio, audio_lengths), audio_lengths)

    def encoder_lengths(self, audio_lengths: torch.Tensor) -> torch.Tensor:
        """(B,) valid samples -> (B,) encoder frames computed from real audio."""
        # The encoder's own length arithmetic for its strided subsampling convolutions.
        return self.encoder._get_subsampling_output_length(self.frontend.num_valid_frames(audio_lengths))

    def encoder_frame_mask(self, audio_lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B,) valid samples -> (B, L) True for encoder frames computed from real audio."""
        return torch.arange(num_frames, device=audio_lengths.device) < self.encoder_lengths(audio_lengths)[:, None]

    @staticmethod
    def _lengths_or_full(audio: torch.Tensor, audio_lengths: Optional[torch.Tensor]) -> torch.Tensor:
        if audio_lengths is not None:
            return audio_lengths
        return torch.full((audio.shape[0],), audio.shape[1], dtype=torch.long, device=audio.device)
