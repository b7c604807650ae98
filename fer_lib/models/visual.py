"""Visual branch: face crops -> SigLIP tower -> ROI tokens -> frame pooling -> temporal encoder -> segments.

    frames (B, T, 3, 224, 224) uint8, T = 16
      normalise + VisionTower -> (B, K, T, 196, D) K of its layer outputs; patch 16 on 224 px: a 14 x 14
                                                  grid, D = tower width
      ROITokenCompression     -> (B, K, T, 68, D) landmark-guided, parameter-free     <- forward_features
      LayerMix                -> (B, T, 68, D)    their learned weighted sum (fer_lib.models.layer_mix)
      frame AttentionPool     -> (B, T, D)
      TemporalEncoder         -> (B, T, D)        GSCBs (local motion) + self-attention (whole clip)
      segment mean            -> (B, 8, D)        segment i = frames [i*T/8, (i+1)*T/8), the i-th slice of the window
      projection              -> (B, 8, output_dim or D)                               <- forward_head

`forward_features` ends with the ROI compression because the compression has no parameters: the
embedding cache then stores 68 rather than 196 tokens per frame and layer, and everything learned sits
in the head.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn
from transformers import Siglip2VisionModel, SiglipVisionModel

from fer_lib.config import ConfigError, InputConfig, VisualConfig
from fer_lib.models.layer_mix import LayerMix, select_layers, stack_layers
from fer_lib.models.pooling import AttentionPool
from fer_lib.models.roi import ROITokenCompression


class VisionTower(nn.Module):
    """A SigLIP or SigLIP2 vision model seen as images (N, 3, H, W) -> patch tokens (N, P, D).

    SigLIP embeds patches with a strided convolution and a fixed position table, so it needs the image
    size it was trained on. SigLIP2's NaFlex variant takes the patches already cut (N, P, p*p*3,
    channels last within a patch) with their grid shape, and resizes its position table to the grid.
    Cutting the patches here makes the two flavours interchangeable. Both yield tokens in raster order.
    `forward` returns the layer outputs `layers` (1-based), each normalised (`fer_lib.models.layer_mix`).
    """

    def __init__(self, model: Union[SiglipVisionModel, Siglip2VisionModel], image_size: int, layers: list[int]):
        super().__init__()
        config = model.config
        if isinstance(model, SiglipVisionModel) and config.image_size != image_size:
            raise ConfigError(
                f"the vision tower takes {config.image_size} px images but input.image_size is {image_size}"
            )
        if image_size % config.patch_size:
            raise ConfigError(f"input.image_size {image_size} is not a multiple of the patch size {config.patch_size}")
        self.model = model
        self.patch_size = config.patch_size
        self.width = config.hidden_size
        self.layers = layers

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, K, P, D)."""
        if isinstance(self.model, Siglip2VisionModel):
            out = self.model(**self._naflex_inputs(pixel_values), output_hidden_states=True)
        else:
            out = self.model(pixel_values=pixel_values, output_hidden_states=True)
        return stack_layers(out.hidden_states, self.layers)

    def _naflex_inputs(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        images, channels, height, width = pixel_values.shape
        rows, cols, patch = height // self.patch_size, width // self.patch_size, self.patch_size
        patches = pixel_values.reshape(images, channels, rows, patch, cols, patch)
        patches = patches.permute(0, 2, 4, 3, 5, 1).reshape(images, rows * cols, -1)  # (N, P, p*p*3)
        return {
            "pixel_values": patches,
            "pixel_attention_mask": torch.ones(images, rows * cols, dtype=torch.long, device=pixel_values.device),
            "spatial_shapes": torch.tensor([[rows, cols]], device=pixel_values.device).expand(images, -1),
        }


class GatedShortConvBlock(nn.Module):
    """GSCB: a depthwise convolution over a few neighbouring frames, with multiplicative gates (local motion).

    The gating follows LFM2's short-convolution operator: the input is split into values and two gates;
    the input gate selects what enters the convolution, the output gate what leaves it. The kernel is
    centred ("same" padding), not causal: the whole clip is known when classifying it.
    """

    def __init__(self, dim: int, kernel_size: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding="same", groups=dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        input_gate, output_gate, values = self.in_proj(self.norm(frames)).chunk(3, dim=-1)  # (B, T, D) each
        mixed = self.conv((input_gate * values).transpose(1, 2)).transpose(1, 2)  # (B, T, D)
        return frames + self.dropout(self.out_proj(output_gate * mixed))


class TemporalEncoder(nn.Module):
    """(B, T, D) frame vectors -> (B, T, D): GSCBs for local motion, then self-attention over the clip.

    There is no position table: the convolutions run first, so each frame's vector already carries its
    neighbourhood and, through the zero padding, its distance to the clip ends. That is the order
    information attention needs (a conditional position encoding) and leaves T free.
    """

    def __init__(self, dim: int, cfg: VisualConfig):
        super().__init__()
        self.conv_blocks = nn.ModuleList(
            GatedShortConvBlock(dim, cfg.temporal_conv_kernel, cfg.dropout) for _ in range(cfg.temporal_conv_layers)
        )
        self.attention_blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, cfg.temporal_heads, dim_feedforward=4 * dim, dropout=cfg.dropout,
                activation="gelu", batch_first=True, norm_first=True,
            )
            for _ in range(cfg.temporal_attention_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        for block in self.conv_blocks:
            frames = block(frames)
        for block in self.attention_blocks:
            frames = block(frames)
        return self.norm(frames)


class VisualBranch(nn.Module):
    """Face crops (B, T, 3, H, W) uint8 -> (B, num_segments, output_dim or tower width)."""

    def __init__(self, cfg: VisualConfig, tower: Union[SiglipVisionModel, Siglip2VisionModel], input_cfg: InputConfig):
        super().__init__()
        layers = select_layers(tower.config.num_hidden_layers, cfg.mixed_layers)
        self.tower = VisionTower(tower, input_cfg.image_size, layers)
        self.layer_mix = LayerMix(layers)
        self.num_segments = input_cfg.num_segments
        # The loader ships uint8 (4x less to move); (x / 255 - mean) / std is folded into one scale and
        # shift, applied in place: on a CPU the three-pass version cost as much as the tiny tower.
        mean, std = torch.tensor(input_cfg.image_mean).view(3, 1, 1), torch.tensor(input_cfg.image_std).view(3, 1, 1)
        self.register_buffer("pixel_scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("pixel_shift", -mean / std, persistent=False)
        self.roi = ROITokenCompression(input_cfg.image_size, self.tower.patch_size, cfg.roi_tokens)

        width = self.tower.width
        if width % cfg.temporal_heads:
            raise ConfigError(f"visual.temporal_heads ({cfg.temporal_heads}) must divide the tower width {width}")
        self.frame_pool = AttentionPool(width, cfg.temporal_heads)
        self.temporal = TemporalEncoder(width, cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.projection = nn.Linear(width, cfg.output_dim) if cfg.output_dim else nn.Identity()
        self.output_dim = cfg.output_dim or width

    def forward_features(self, frames: torch.Tensor, landmarks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, 3, H, W) uint8 crops, (B, T, 5, 2) landmarks or None -> ROI tokens (B, K, T, roi_tokens, D)."""
        if frames.dtype != torch.uint8:
            raise TypeError(f"frames must be uint8 [B, T, 3, H, W] face crops, got {frames.dtype}")
        batch, num_frames = frames.shape[:2]
        pixels = frames.flatten(0, 1).to(self.pixel_scale.dtype).mul_(self.pixel_scale).add_(self.pixel_shift)
        tokens = self.tower(pixels).unflatten(0, (batch, num_frames)).transpose(1, 2)  # (B, K, T, P, D)
        return self.roi(tokens, landmarks)  # (B, K, T, roi_tokens, D)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """ROI tokens of the mixed layers (B, K, T, R, D) -> segment embeddings (B, num_segments, output_dim)."""
        features = self.layer_mix(features.to(self.frame_pool.key.weight.dtype))  # (B, T, R, D); cache: fp16
        batch, num_frames, _, dim = features.shape
        frames = self.frame_pool(features.flatten(0, 1)).view(batch, num_frames, dim)  # (B, T, D)
        frames = self.temporal(frames)
        segments = frames.view(batch, self.num_segments, num_frames // self.num_segments, dim).mean(dim=2)  # (B, S, D)
        return self.projection(self.dropout(segments))

    def forward(self, frames: torch.Tensor, landmarks: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(frames, landmarks))
