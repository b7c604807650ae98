"""Landmark-guided ROI token compression: a frame's 196 patch tokens -> 68, chosen without parameters.

Expression lives in a few places of a face: brows, eyes, nose, mouth. The crop's other tokens (hair,
background, neck) mostly repeat each other, so each frame keeps

  * 16 context tokens on a fixed 4 x 4 lattice over the whole crop: head pose, face outline, lighting;
  * the remaining 52 tokens nearest to seven facial anchors: the five MTCNN landmarks (eyes, nose,
    mouth corners) plus one brow anchor above each eye. MTCNN has no brow point, but brows carry much
    of surprise, fear and anger, so each is placed 0.4 of the eye-to-mouth distance above its eye
    (along the face's own up direction, so tilted heads work). "Nearest" is the distance from a
    patch centre to its closest anchor, so regions grow around every anchor at once and never
    select a token twice.

Selected tokens keep raster order. Their position is not lost: the vision tower has already mixed its
position embedding into every token. Because the choice has no parameters and depends only on the
landmarks, compression belongs to `VisualBranch.forward_features`, and the embedding cache stores
68 tokens per frame instead of 196 (2.9x smaller). Missing landmarks (absent key, or non-finite
values from a failed detection) fall back to the canonical positions of `fer_lib.landmarks`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from fer_lib.config import ConfigError, PreprocessConfig
from fer_lib.landmarks import canonical_in_crop

BROW_OFFSET = 0.4  # brow anchor = eye + this fraction of (eye centre - mouth centre)
CONTEXT_LATTICE = 4  # a CONTEXT_LATTICE x CONTEXT_LATTICE lattice of tokens is always kept


def canonical_landmarks(image_size: int, margin: float = PreprocessConfig.face_margin) -> torch.Tensor:
    """(5, 2) canonical landmark positions in pixels of an `image_size` crop made with `margin`."""
    # torch.tensor, not from_numpy: it follows a `with torch.device(...)` build like every other buffer
    return torch.tensor(canonical_in_crop(margin), dtype=torch.float32) * image_size


class ROITokenCompression(nn.Module):
    """Keeps `num_tokens` of a frame's patch tokens: a context lattice plus the tokens nearest the face anchors."""

    def __init__(self, image_size: int, patch_size: int, num_tokens: int):
        super().__init__()
        grid = image_size // patch_size
        num_context = CONTEXT_LATTICE**2
        if not num_context < num_tokens <= grid * grid:
            raise ConfigError(
                f"visual.roi_tokens must be in ({num_context}, {grid * grid}] for a {grid}x{grid} patch grid, "
                f"got {num_tokens}"
            )
        self.num_tokens = num_tokens

        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) * patch_size
        rows, cols = torch.meshgrid(centres, centres, indexing="ij")
        lattice = ((torch.arange(CONTEXT_LATTICE) + 0.5) * grid / CONTEXT_LATTICE).long()
        is_context = torch.zeros(grid, grid, dtype=torch.bool)
        is_context[lattice[:, None], lattice[None, :]] = True
        # Geometry derived from the config: buffers so they follow the device, not saved in checkpoints.
        self.register_buffer("token_centres", torch.stack([cols, rows], dim=-1).reshape(-1, 2), persistent=False)
        self.register_buffer("is_context", is_context.reshape(-1), persistent=False)
        self.register_buffer("canonical", canonical_landmarks(image_size), persistent=False)

    def anchors(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(..., 5, 2) landmarks -> (..., 7, 2): the landmarks and two brow anchors."""
        eyes = landmarks[..., 0:2, :]  # (..., 2, 2)
        up = eyes.mean(dim=-2, keepdim=True) - landmarks[..., 3:5, :].mean(dim=-2, keepdim=True)  # (..., 1, 2)
        return torch.cat([landmarks, eyes + BROW_OFFSET * up], dim=-2)

    def select(self, landmarks: Optional[torch.Tensor], batch: int, num_frames: int) -> torch.Tensor:
        """(B, T, 5, 2) landmarks in crop pixels, or None -> (B, T, num_tokens) token indices in raster order."""
        if landmarks is None:
            landmarks = self.canonical.expand(batch, num_frames, -1, -1)
        landmarks = torch.where(torch.isfinite(landmarks), landmarks.float(), self.canonical)
        anchors = self.anchors(landmarks)  # (B, T, 7, 2)
        distance = (anchors[..., :, None, :] - self.token_centres).norm(dim=-1).amin(dim=-2)  # (B, T, P)
        distance = distance.masked_fill(self.is_context, -1.0)  # context tokens always win
        nearest = distance.topk(self.num_tokens, dim=-1, largest=False).indices
        return nearest.sort(dim=-1).values

    def forward(self, tokens: torch.Tensor, landmarks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, ..., T, P, D) patch tokens (e.g. one set per encoder layer) -> (B, ..., T, num_tokens, D).

        A frame keeps the same tokens in every layer: the choice depends on its landmarks only."""
        batch, num_frames, dim = tokens.shape[0], tokens.shape[-3], tokens.shape[-1]
        indices = self.select(landmarks, batch, num_frames)  # (B, T, R)
        middle = [1] * (tokens.ndim - 4)  # the dimensions between B and T
        indices = indices.view(batch, *middle, num_frames, -1, 1).expand(*tokens.shape[:-2], -1, dim)
        return tokens.gather(-2, indices)
