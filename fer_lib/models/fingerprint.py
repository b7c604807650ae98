"""Fingerprints of the weights a checkpoint does not hold: the pretrained parts reloaded from their source.

A checkpoint stores only what trains; a frozen SigLIP2 or Parakeet, and the LFM2 base under its LoRA
adapters, come back from the hub (at the pinned revision) or a local directory when it is loaded. If
that source now holds other weights (an unpinned hub repo that was updated, another local copy), the
trained heads would silently read other features. So the config.json of every checkpoint carries
`frozen_weights` ({part: fingerprint}), and loading a checkpoint compares it with the weights just
loaded: a difference stops with one line naming the part, unless it is allowed knowingly.

A fingerprint is the SHA-256 of every tensor of the part as loaded (name, shape, dtype and all bytes;
adapters excluded): about 1 s per GB of weights on a CPU. The embedding cache keys its stores with
the same fingerprint, so features of other encoder weights are never reused.
"""

from __future__ import annotations

import hashlib
from typing import Optional

import torch
from torch import nn

from fer_lib.errors import FerError
from fer_lib.models.lora import is_adapter

FIELD = "frozen_weights"  # the key of checkpoint config.json that holds {part: fingerprint}


class FrozenWeightsError(FerError):
    """The pretrained weights loaded now are not those a checkpoint was trained with; one line."""


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over every tensor of `module` (adapters excluded): its name, shape, dtype and bytes."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        if is_adapter(name):
            continue
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def frozen_fingerprints(model) -> dict[str, str]:
    """{part: fingerprint} of the parts of an EmotionModel whose weights come from their source, not a checkpoint."""
    return {part: weights_fingerprint(model.part_module(part)) for part in model.parts_from_source()}


def check(model, saved: Optional[dict[str, str]], allow: bool = False) -> list[str]:
    """Compare `model`'s source-loaded weights with `saved` (a checkpoint's `frozen_weights`).

    Raises FrozenWeightsError naming the first changed part, or, with `allow`, returns one line per
    changed part. A checkpoint saved before fingerprints existed (`saved` None) is not checked.
    """
    if saved is None:
        return []
    sources = model.pretrained_sources()
    # Every saved part that comes from a source now, frozen or not (a part thawed to fine-tune it starts
    # from its source's weights too); call this before training changes them.
    current = {part: weights_fingerprint(model.part_module(part)) for part in saved if part in sources}
    changed = [f"{part} ({sources.get(part, 'random init')}: fingerprint {saved[part][:12]} when trained, "
               f"{current.get(part, 'not loaded from a source')[:12]} now)"
               for part in sorted(saved) if current.get(part) != saved[part]]
    if changed and not allow:
        raise FrozenWeightsError(
            f"the frozen weights of {changed[0]} differ from those the checkpoint was trained with (another hub "
            "revision or local copy?); load the same weights, or pass --allow_other_frozen_weights to use these knowingly"
        )
    return [f"frozen weights changed: {line}" for line in changed]
