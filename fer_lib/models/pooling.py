"""Attention pooling: a learned query reads a set of tokens, optionally through a mask.

One module serves three places: the audio branch pools encoder frames into time segments, the visual
branch pools a frame's ROI tokens into one vector, and the classifier pools the fused segments.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


class AttentionPool(nn.Module):
    """Multi-head attention pooling with one learned query per head.

    `forward(tokens, mask)` turns tokens (B, N, D) into (B, G, D): G groups, each a softmax-weighted sum
    over the tokens its row of `mask` (B, G, N) allows; without a mask G = 1 and every token counts.
    Keys and values are computed once and shared by the groups, so pooling 38 audio frames into 8
    time segments costs one projection, not eight.

    The query starts small, so the pool starts close to a (masked) mean and learns what to attend to
    (not at zero: the keys would get no gradient until the query moved).
    A group whose mask is all False (a segment that lies entirely in padded audio) mixes nothing,
    rather than NaN: the softmax over equal fill values is uniform and the mask then zeroes it.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"pooling width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.query = nn.Parameter(0.02 * torch.randn(num_heads, self.head_dim, 1))
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        batch, num_tokens, dim = tokens.shape
        heads = (batch, num_tokens, self.num_heads, self.head_dim)
        keys = self.key(tokens).view(heads).transpose(1, 2)  # (B, H, N, d)
        values = self.value(tokens).view(heads).transpose(1, 2)  # (B, H, N, d)

        scores = (keys @ self.query.to(keys.dtype)).transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, H, 1, N)
        if mask is None:
            weights = scores.softmax(dim=-1)  # (B, H, 1, N)
        else:
            mask = mask[:, None]  # (B, 1, G, N)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (B, H, G, N)
            weights = scores.softmax(dim=-1) * mask

        pooled = (weights @ values).transpose(1, 2).reshape(batch, -1, dim)  # (B, G, D)
        return self.out(pooled)
