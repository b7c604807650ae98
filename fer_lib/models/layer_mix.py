"""The learnable weighted sum of an encoder's layers (SUPERB): every layer of a frozen encoder, not only the last.

Probing studies find emotion concentrated in the middle layers of speech encoders, and ASR fine-tuning
(Parakeet is a CTC ASR model) reshapes mostly the top layers, so the last layer alone is the weakest
reading of a frozen encoder. A branch therefore keeps K of its encoder's layer outputs, evenly spread up
to the last (`mixed_layers`), and learns one weight per layer:

    encoder layer outputs 1..L  --select K, normalise each-->  (B, K, ...)   <- what the embedding cache stores
    softmax(logits) over K      --weighted sum-->               (B, ...)      <- LayerMix, trained with the head

Each kept layer is layer-normalised without parameters before it is stored: the residual stream of a
pre-norm transformer grows with depth, and only on equal scales do the learned weights say which layers
the model uses (`weights`, plotted after training). The weights start uniform.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def select_layers(num_layers: int, count: int) -> list[int]:
    """`count` of the layer outputs 1..num_layers, evenly spread, the last always included (all of them if fewer)."""
    count = min(count, num_layers)
    return [round(num_layers * (i + 1) / count) for i in range(count)]


def stack_layers(hidden_states: tuple[torch.Tensor, ...], layers: list[int]) -> torch.Tensor:
    """hidden_states (embeddings, layer 1, ..., layer L), each (B, ...) -> (B, K, ...) of `layers`, normalised."""
    return torch.stack([F.layer_norm(hidden_states[i], hidden_states[i].shape[-1:]) for i in layers], dim=1)


class LayerMix(nn.Module):
    """(B, K, ...) layer outputs -> (B, ...): their softmax-weighted sum, one learned logit per layer."""

    def __init__(self, layers: list[int]):
        super().__init__()
        self.layers = layers  # which encoder layers the K inputs are (1-based), for the plot
        self.logits = nn.Parameter(torch.zeros(len(layers)))

    @property
    def weights(self) -> torch.Tensor:
        """(K,) the current mixing weights (they sum to 1)."""
        return self.logits.softmax(dim=0)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        weights = self.weights.to(states.dtype).view(1, -1, *([1] * (states.ndim - 2)))  # (1, K, 1, ...)
        return (states * weights).sum(dim=1)


def learned_weights(model, weights: dict[str, torch.Tensor]) -> dict[str, tuple[list[int], list[float]]]:
    """{branch: (encoder layers, mixing weights)} of an EmotionModel's layer mixes, read from saved `weights`
    (a checkpoint's state dict) so that they are those of a chosen checkpoint, e.g. the best."""
    return {branch: (mix.layers, weights[f"{branch}.layer_mix.logits"].float().softmax(dim=0).tolist())
            for branch, mix in (("audio", model.audio.layer_mix), ("visual", model.visual.layer_mix))}
