"""Fusion: gated projection of both modalities into an LFM2 backbone, one output per time segment.

    audio  (B, 8, Da) --GatedModalityProjection--> (B, 8, H) --+
                                                               +-- interleave -> (B, 16, H): a1 v1 a2 v2 ... a8 v8
    visual (B, 8, Dv) --GatedModalityProjection--> (B, 8, H) --+
      Lfm2Model(inputs_embeds)  -> (B, 16, H)
      every visual position     -> (B, 8, H)
      output projection         -> (B, 8, output_dim)

Why interleaved: LFM2 is causal (short convolutions and attention only look back), so token order
decides who sees whom. Interleaving keeps the two modalities of one segment next to each other and in
time order; the visual token of segment i is the first position that has seen both modalities of
segments 1..i, so it is read out as segment i's fused embedding. Concatenating [a1..a8, v1..v8]
instead would let visual tokens see all audio but never the reverse.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import Lfm2Model

from fer_lib.config import FusionConfig


class GatedModalityProjection(nn.Module):
    """(B, S, D_in) modality embeddings -> (B, S, H) backbone tokens; a learned "missing" token where absent.

    tokens = W_v x * sigmoid(W_g x) + type, with x layer-normalised: the gate lets the model damp
    dimensions (or whole segments) of a modality that are not informative for a clip. A sample whose
    modality is absent (not requested, or dropped by modality dropout) gets the learned missing token
    instead, so the backbone always sees 2 x S tokens and can tell "no audio" from "silent audio".
    The modality-type embedding is added to both, so the backbone knows which slot is which.
    """

    def __init__(self, in_dim: int, hidden_size: int, num_segments: int):
        super().__init__()
        self.num_segments = num_segments
        self.norm = nn.LayerNorm(in_dim)
        self.value = nn.Linear(in_dim, hidden_size)
        self.gate = nn.Linear(in_dim, hidden_size)
        self.missing_token = nn.Parameter(torch.randn(hidden_size) * 0.02)
        self.type_embedding = nn.Parameter(torch.randn(hidden_size) * 0.02)

    def forward(self, embeds: Optional[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """embeds (B, S, D_in) or None when the batch lacks the modality; present (B,) bool -> (B, S, H)."""
        missing = self.missing_token.expand(present.shape[0], self.num_segments, -1)  # (B, S, H)
        if embeds is None:
            tokens = missing
        else:
            x = self.norm(embeds)
            projected = self.value(x) * torch.sigmoid(self.gate(x))  # (B, S, H)
            tokens = torch.where(present[:, None, None], projected, missing.to(projected.dtype))
        return tokens + self.type_embedding


class FusionModule(nn.Module):
    """Audio and visual segment embeddings -> fused segment embeddings (B, S, output_dim) via LFM2."""

    def __init__(self, cfg: FusionConfig, backbone: Lfm2Model, audio_dim: int, visual_dim: int, num_segments: int):
        super().__init__()
        hidden_size = backbone.config.hidden_size
        self.audio_projection = GatedModalityProjection(audio_dim, hidden_size, num_segments)
        self.visual_projection = GatedModalityProjection(visual_dim, hidden_size, num_segments)
        # Driven by inputs_embeds only: the token table (65536 x 1536 = 100M weights in LFM2-700M) is never used.
        backbone.embed_tokens = None
        self.backbone = backbone
        self.projection = nn.Linear(hidden_size, cfg.output_dim)

    def forward(
        self,
        audio_embeds: Optional[torch.Tensor],
        visual_embeds: Optional[torch.Tensor],
        audio_present: torch.Tensor,
        visual_present: torch.Tensor,
    ) -> torch.Tensor:
        audio_tokens = self.audio_projection(audio_embeds, audio_present)  # (B, S, H)
        visual_tokens = self.visual_projection(visual_embeds, visual_present)  # (B, S, H)
        tokens = torch.stack([audio_tokens, visual_tokens], dim=2).flatten(1, 2)  # (B, 2S, H): a1 v1 a2 v2 ...
        hidden = self.backbone(inputs_embeds=tokens, use_cache=False).last_hidden_state  # (B, 2S, H)
        return self.projection(hidden[:, 1::2])  # (B, S, output_dim)
