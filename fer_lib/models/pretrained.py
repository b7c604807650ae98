"""The one way a pretrained part comes to exist: loaded from a checkpoint, or built with random weights.

A checkpoint is a hub id or a local directory with the same files; `from_pretrained` treats both alike,
so there is exactly one loading path and the tests exercise it with small checkpoints they write
themselves. Each part (`fer_lib.models.model.PRETRAINED_PARTS`) is one module of a larger released model,
loaded straight into that module's class so the rest of the checkpoint is never materialised:

    part            checkpoint model_type   released as           module kept
    visual_encoder  siglip | siglip2        SiglipModel/Siglip2   its vision model (patch tokens, no pooling head)
    audio_encoder   parakeet_ctc            ParakeetForCTC        its FastConformer encoder
    backbone        lfm2                    Lfm2ForCausalLM       its base Lfm2Model

google/siglip2-base-patch16-224 is a fixed-resolution SigLIP2 checkpoint published with model_type
"siglip" (SiglipModel); only the NaFlex SigLIP2 checkpoints are "siglip2". The model_type read from the
checkpoint picks the class, so either flavour loads.

A hub id is loaded at the commit `revision` (the preset pins one per part, `fer_lib.config.REVISIONS`);
with HF_HUB_OFFLINE=1 the same commit comes from the local hub cache, and a commit missing there is an
error rather than another version. A hub id without a pinned revision loads whatever the hub serves
and says so; the commands give it one first, the commit recorded in the root's revision lock
(`fer_lib.models.hub_revisions.pin_revisions`). A local directory has no revisions: it is what it is.

Random init builds the same module classes from config keyword arguments (the `*_config` of the model
config), or, with `random_init=True` and a known hub id, from that checkpoint's architecture stored in
`fer_lib.config.PRETRAINED_ARCHITECTURES`, so the real sizes can be built without a download.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from transformers import (
    AutoConfig,
    Lfm2Model,
    ParakeetEncoder,
    PretrainedConfig,
    PreTrainedModel,
    Siglip2VisionModel,
    SiglipVisionModel,
)
from transformers.utils import logging as hf_logging

from fer_lib.config import PRETRAINED_ARCHITECTURES
from fer_lib.errors import FerError, one_line


class PretrainedLoadError(FerError):
    """A backbone checkpoint cannot be used; the message is one line naming the part and source."""


@dataclass(frozen=True)
class Layout:
    """Where one part's module lives in a released checkpoint and how it is configured for us."""

    model_class: type[PreTrainedModel]
    sub_config: Optional[str]  # attribute of the checkpoint's config holding the module's config; None: the config itself
    overrides: dict[str, Any] = field(default_factory=dict)


# Overrides switch off what we never use or what the released weights were not trained with: the
# SigLIP pooling head (we read patch tokens) and Parakeet's layerdrop (its hub configs say 0.1, but the
# model was trained without it; fine-tuning would skip layers at random). They apply to random init
# too, so both paths build the same modules.
CHECKPOINT_LAYOUTS: dict[str, dict[str, Layout]] = {
    "visual_encoder": {
        "siglip": Layout(SiglipVisionModel, "vision_config", {"vision_use_head": False}),
        "siglip2": Layout(Siglip2VisionModel, "vision_config", {"vision_use_head": False}),
    },
    "audio_encoder": {
        "parakeet_ctc": Layout(ParakeetEncoder, "encoder_config", {"layerdrop": 0.0}),
    },
    "backbone": {
        "lfm2": Layout(Lfm2Model, None),
    },
}
RANDOM_INIT_TYPE = {"visual_encoder": "siglip", "audio_encoder": "parakeet_ctc", "backbone": "lfm2"}


def load_part(
    part: str,
    source: Optional[str],
    config_kwargs: Optional[dict[str, Any]] = None,
    random_init: bool = False,
    revision: Optional[str] = None,
) -> PreTrainedModel:
    """The module for `part` from `source` (hub id or local directory) at `revision`, or random-init when
    source is None.

    With `random_init=True` a source is only read for its architecture: a known hub id needs no
    network (`PRETRAINED_ARCHITECTURES`), a local directory needs only its config.json.
    """
    if source is not None and not random_init and revision is None and not Path(source).is_dir():
        warnings.warn(f"{part} {source} is not pinned to a hub revision: a later update of it on the hub would "
                      "change what this config loads (the checkpoint's weight fingerprint will notice)", stacklevel=2)
    layout, config = _part_config(part, source, config_kwargs or {}, random_init, revision)
    for name, value in layout.overrides.items():
        setattr(config, name, value)
    if source is None or random_init:
        return layout.model_class(config)

    # float32 whatever the checkpoint's dtype (LFM2 ships bf16): mixed precision keeps master weights in
    # float32, and a frozen part can still be cast down by the caller.
    # The checkpoint's other parts (text tower, CTC head, LM head) are expected leftovers, so the
    # "unexpected keys" report is silenced; missing or mismatched weights are checked here instead.
    with _transformers_errors_only():
        try:
            model, info = layout.model_class.from_pretrained(
                source, config=config, revision=revision, dtype=torch.float32, output_loading_info=True,
                ignore_mismatched_sizes=True,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise PretrainedLoadError(f"cannot load {part} from {source!r}: {one_line(exc)}") from exc
    missing = sorted(info["missing_keys"]) + sorted(str(key) for key, *_ in info["mismatched_keys"])
    if missing:
        raise PretrainedLoadError(
            f"{part} checkpoint {source!r} lacks {len(missing)} weights of {layout.model_class.__name__} "
            f"(e.g. {missing[0]})"
        )
    return model


def _part_config(
    part: str, source: Optional[str], config_kwargs: dict[str, Any], random_init: bool, revision: Optional[str]
) -> tuple[Layout, PretrainedConfig]:
    if part not in CHECKPOINT_LAYOUTS:
        raise ValueError(f"unknown backbone part {part!r}; choose one of {tuple(CHECKPOINT_LAYOUTS)}")
    if source is None or (random_init and source in PRETRAINED_ARCHITECTURES):
        layout = CHECKPOINT_LAYOUTS[part][RANDOM_INIT_TYPE[part]]
        kwargs = config_kwargs if source is None else PRETRAINED_ARCHITECTURES[source]
        try:
            return layout, layout.model_class.config_class(**kwargs)
        except (TypeError, ValueError) as exc:
            raise PretrainedLoadError(f"bad {part} config: {one_line(exc)}") from exc

    try:
        checkpoint_config = AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise PretrainedLoadError(f"cannot read the {part} config from {source!r}: {one_line(exc)}") from exc
    layout = CHECKPOINT_LAYOUTS[part].get(checkpoint_config.model_type)
    if layout is None:
        raise PretrainedLoadError(
            f"{source!r} is a {checkpoint_config.model_type!r} checkpoint; {part} needs one of "
            f"{tuple(CHECKPOINT_LAYOUTS[part])}"
        )
    config = getattr(checkpoint_config, layout.sub_config) if layout.sub_config else checkpoint_config
    return layout, config


@contextlib.contextmanager
def _transformers_errors_only():
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
