"""Classifier: fused segments (B, 8, D) -> temporal pooling (B, D) -> MLP -> logits (B, num_classes)."""

from __future__ import annotations

import torch
from torch import nn

from fer_lib.config import POOLINGS, ClassifierConfig
from fer_lib.models.pooling import AttentionPool


class TemporalPooling(nn.Module):
    """(B, S, D) -> (B, D) by mean, max, attention (a learned query, one head) or the last segment.

    "last" suits the causal backbone: its final position has seen the whole clip.
    """

    def __init__(self, mode: str, dim: int):
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
        self.mode = mode
        self.attention = AttentionPool(dim, num_heads=1) if mode == "attention" else None

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            return segments.mean(dim=1)
        if self.mode == "max":
            return segments.amax(dim=1)
        if self.mode == "last":
            return segments[:, -1]
        return self.attention(segments).squeeze(1)


class EmotionClassifier(nn.Module):
    """Temporal pooling, LayerNorm, then Linear-GELU-Dropout per hidden width, then the class logits."""

    def __init__(self, cfg: ClassifierConfig, dim: int):
        super().__init__()
        self.pooling = TemporalPooling(cfg.pooling, dim)
        layers: list[nn.Module] = [nn.LayerNorm(dim)]
        for width in cfg.hidden_dims:
            layers += [nn.Linear(dim, width), nn.GELU(), nn.Dropout(cfg.dropout)]
            dim = width
        layers.append(nn.Linear(dim, cfg.num_classes))
        self.mlp = nn.Sequential(*layers)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """(B, S, D) fused segments -> (B, num_classes) logits."""
        return self.mlp(self.pooling(segments))
