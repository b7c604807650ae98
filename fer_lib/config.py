"""Typed configuration for fer_lib: one nested dataclass tree, saved as JSON beside every checkpoint.

This is the only config system. Everything a run depends on is a field here:

    ModelConfig
      input:      InputConfig       what a clip becomes (sample rate, window, frames, image size, mean/std)
      audio:      AudioConfig       log-mel + FastConformer (Parakeet) encoder + segment attention pooling
      visual:     VisualConfig      SigLIP/SigLIP2 tower + ROI token compression + temporal encoder
      fusion:     FusionConfig      gated modality projection + LFM2 backbone
      classifier: ClassifierConfig  temporal pooling over segments + MLP head

    PreprocessConfig  how raw mp4 files become the per-clip cache (shares InputConfig's fields)
    TrainConfig       optimisation, early stopping, logging (the training command's flags)

Presets (`get_preset`) fill these trees:
    tiny         all backbones random-init from small configs: CPU, tests, CI and the local demo
    lightweight  pretrained SigLIP2 + pretrained FastConformer (both frozen), small random-init LFM2
    full         as lightweight, with the pretrained LFM2-700M backbone

A backbone is loaded from `*_id` (a hub id or a local directory with the same files) when it is set,
at the hub commit `*_revision` (pinned in the presets, so a later hub update cannot change a run), and
built with random weights from `*_config` (keyword arguments of the transformers config class) when
`*_id` is None.

The reference recipe (`get_recipe("reference")`: a preset plus its training settings) is what the
6-fold cross-validation of README's results runs (`python -m fer_lib.cv --recipe reference`).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from fer_lib import EMOTIONS
from fer_lib.errors import FerError
from fer_lib.fileio import atomic_write_text


class ConfigError(FerError):
    """A config value is wrong; the message is one line a person can act on."""


@dataclass
class InputConfig:
    """What one clip becomes before any model sees it. Shared by preprocessing and the model."""

    sample_rate: int = 16000
    clip_seconds: float = 3.0
    num_frames: int = 16  # frames sampled uniformly in the clip window
    image_size: int = 224  # face crop side, pixels
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # SigLIP normalisation
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    num_segments: int = 8  # both branches are pooled into this many time-aligned segments

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))


@dataclass
class AudioConfig:
    encoder_id: Optional[str] = None  # e.g. "nvidia/parakeet-ctc-0.6b" (a CTC model: its encoder is used)
    encoder_revision: Optional[str] = None  # hub commit (40 hex) of encoder_id; None: whatever the hub serves now
    encoder_config: dict[str, Any] = field(default_factory=dict)  # ParakeetEncoderConfig kwargs when encoder_id is None
    # How many encoder layer outputs the learnable softmax-weighted sum mixes (SUPERB), evenly spread up to
    # the last layer; 1: the last layer alone. Emotion sits mostly in the middle layers of speech encoders.
    mixed_layers: int = 12
    num_mel_bins: int = 80
    n_fft: int = 512
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    output_dim: int = 512
    pool_heads: int = 4
    dropout: float = 0.1
    freeze_encoder: bool = True


@dataclass
class VisualConfig:
    encoder_id: Optional[str] = None  # e.g. "google/siglip2-base-patch16-224" (SigLIP or SigLIP2: its vision tower is used)
    encoder_revision: Optional[str] = None  # hub commit (40 hex) of encoder_id
    encoder_config: dict[str, Any] = field(default_factory=dict)  # SiglipVisionConfig kwargs when encoder_id is None
    mixed_layers: int = 6  # layer outputs mixed by the learnable weighted sum (as AudioConfig.mixed_layers)
    roi_tokens: int = 68  # 196 patch tokens -> this many per frame, guided by landmarks
    temporal_conv_layers: int = 2  # gated short-convolution blocks (GSCB)
    temporal_conv_kernel: int = 3
    temporal_attention_layers: int = 1
    temporal_heads: int = 8
    output_dim: Optional[int] = None  # None: the tower's width
    dropout: float = 0.1
    freeze_encoder: bool = True


@dataclass
class FusionConfig:
    backbone_id: Optional[str] = None  # e.g. "LiquidAI/LFM2-700M" (a causal LM: its base model is used)
    backbone_revision: Optional[str] = None  # hub commit (40 hex) of backbone_id
    backbone_config: dict[str, Any] = field(default_factory=dict)  # Lfm2Config kwargs when backbone_id is None
    output_dim: int = 512
    modality_dropout: float = 0.0  # training only: probability of dropping one whole modality per sample
    freeze_backbone: bool = False
    # A pretrained backbone (backbone_id) that trains learns through LoRA adapters of this rank (peft), its
    # own weights frozen; 0: fine-tune all of it. A random-init backbone always trains whole.
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05


@dataclass
class ClassifierConfig:
    pooling: str = "attention"  # mean | max | attention | last
    hidden_dims: tuple[int, ...] = (256,)
    dropout: float = 0.2
    num_classes: int = len(EMOTIONS)
    label_smoothing: float = 0.0


@dataclass
class ModelConfig:
    preset: str = "tiny"
    input: InputConfig = field(default_factory=InputConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    visual: VisualConfig = field(default_factory=VisualConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def validate(self) -> "ModelConfig":
        """Raise ConfigError with a one-line reason for a value that cannot work."""
        if self.classifier.pooling not in POOLINGS:
            raise ConfigError(f"classifier.pooling must be one of {POOLINGS}, got {self.classifier.pooling!r}")
        if self.input.num_frames % self.input.num_segments:
            raise ConfigError(
                f"input.num_frames ({self.input.num_frames}) must be a multiple of "
                f"input.num_segments ({self.input.num_segments})"
            )
        if not 0.0 <= self.fusion.modality_dropout < 1.0:
            raise ConfigError(f"fusion.modality_dropout must be in [0, 1), got {self.fusion.modality_dropout}")
        if self.input.clip_seconds <= 0 or self.input.sample_rate <= 0:
            raise ConfigError("input.clip_seconds and input.sample_rate must be positive")
        for name, value in (("audio.mixed_layers", self.audio.mixed_layers),
                            ("visual.mixed_layers", self.visual.mixed_layers)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.fusion.lora_rank, int) or self.fusion.lora_rank < 0:
            raise ConfigError(f"fusion.lora_rank must be a non-negative integer, got {self.fusion.lora_rank!r}")
        for name, revision in (("audio.encoder_revision", self.audio.encoder_revision),
                               ("visual.encoder_revision", self.visual.encoder_revision),
                               ("fusion.backbone_revision", self.fusion.backbone_revision)):
            if revision is not None and not is_commit_hash(revision):
                raise ConfigError(f"{name} must be a full 40-hex commit hash, got {revision!r}")
        return self


def is_commit_hash(text: str) -> bool:
    """A full git commit hash: 40 lower-case hex digits (a branch or tag name can move; a commit cannot)."""
    return isinstance(text, str) and len(text) == 40 and all(c in "0123456789abcdef" for c in text)


POOLINGS = ("mean", "max", "attention", "last")


@dataclass
class PreprocessConfig:
    """How a raw clip becomes one cache file. Any change here invalidates an existing cache."""

    input: InputConfig = field(default_factory=InputConfig)
    detect_max_side: int = 320  # faces are found on frames downscaled to this longest side
    face_margin: float = 0.25  # crop = face box grown by this fraction on each side
    box_smoothing: float = 0.6  # exponential smoothing of the face box over time (0 = none)
    min_face_size: int = 20  # MTCNN's smallest face, pixels on the downscaled detection frame
    detect_keyframes: int = 3  # full MTCNN on this many of the T frames; O-net tracks the face on all T
    include_song: bool = False
    media_types: tuple[str, ...] = ("01",)  # RAVDESS media-type codes kept (fer_lib.data.ravdess): 01 = audio+video


@dataclass
class TrainConfig:
    """The training command's flags (mirrors the original script) plus what the loop needs."""

    batch_size: int = 8
    grad_accum_steps: int = 2
    max_epochs: int = 50
    lr: float = 1e-4  # heads and fusion
    backbone_lr: float = 1e-5  # any unfrozen pretrained encoder or backbone
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    early_stopping_patience: int = 15
    early_stopping_metric: str = "macro_f1"  # macro_f1 | uar
    modalities: str = "av"  # av | a | v (fer_lib.modalities.FLAGS)
    fold: Optional[int] = None  # None: the fixed actor split; k: the k-th actor fold
    seed: int = 42
    num_workers: Optional[int] = None  # None: a sensible default for the machine
    use_wandb: bool = False
    wandb_project: str = "fer_lib"
    embedding_cache: bool = True  # cache frozen-encoder outputs (their raw input is then not augmented)
    augment: bool = True  # train-time augmentation: of the raw input, or of a cached branch's features (masking)
    checkpoint_every_steps: int = 0  # also save `last` every N optimizer steps inside an epoch (0: epoch ends only)
    resume_from: Optional[str] = None  # checkpoint folder the run started from (None: from scratch)

    def validate(self) -> "TrainConfig":
        """Raise ConfigError with a one-line reason for a value that cannot work."""
        for name in ("batch_size", "grad_accum_steps", "max_epochs", "early_stopping_patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("lr", "backbone_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.early_stopping_metric not in EARLY_STOPPING_METRICS:
            raise ConfigError(
                f"early_stopping_metric must be one of {EARLY_STOPPING_METRICS}, got {self.early_stopping_metric!r}"
            )
        from fer_lib import modalities

        modalities.parse(self.modalities)
        if self.fold is not None and (not isinstance(self.fold, int) or self.fold < 0):
            raise ConfigError(f"fold must be a non-negative integer or None, got {self.fold!r}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0 or None, got {self.num_workers}")
        if self.checkpoint_every_steps < 0:
            raise ConfigError(f"checkpoint_every_steps must be >= 0, got {self.checkpoint_every_steps}")
        return self


EARLY_STOPPING_METRICS = ("macro_f1", "uar")


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------

PRESETS = ("tiny", "lightweight", "full")

SIGLIP2_ID = "google/siglip2-base-patch16-224"
PARAKEET_ID = "nvidia/parakeet-ctc-0.6b"
LFM2_ID = "LiquidAI/LFM2-700M"
# The hub commit each pretrained part is loaded at (HF_HUB_OFFLINE loads the same commit from the local cache).
# Found in public code that pins these ids (the hub itself was not reachable from the build machines):
# SigLIP2 at 75de2d55... is pinned by several projects; LFM2-700M at ab260293... is a snapshot folder of the
# hub cache quoted in a public README. No commit of nvidia/parakeet-ctc-0.6b could be found, so it is not
# pinned (None): its first training run under a root records the commit the hub serves then in
# `hub_revisions.json` there, and every later run loads that one (fer_lib.models.hub_revisions); the
# frozen-weight fingerprint in every checkpoint still catches a change. Set it once known:
# `huggingface_hub.model_info(PARAKEET_ID).sha` (a pin here wins over any lock file).
REVISIONS = {
    SIGLIP2_ID: "75de2d55ec2d0b4efc50b3e9ad70dba96a7b2fa2",
    PARAKEET_ID: None,
    LFM2_ID: "ab260293733f05dd4ce22399bea1cae2cf9b272d",
}

# The architectures behind those ids, as kwargs of the same config classes `*_config` uses
# (SiglipVisionConfig, ParakeetEncoderConfig, Lfm2Config), so `build_model(cfg, random_init=True)`
# builds the real shapes without a download (parameter tables, memory estimates).
SIGLIP2_BASE_VISION = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    image_size=224, patch_size=16, num_channels=3, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
)
PARAKEET_CTC_0_6B_ENCODER = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=8, intermediate_size=4096,
    num_mel_bins=80, subsampling_factor=8, subsampling_conv_channels=256, conv_kernel_size=9,
)
LFM2_700M = dict(
    vocab_size=65536, hidden_size=1536, intermediate_size=10240, num_hidden_layers=16,
    num_attention_heads=24, num_key_value_heads=8, max_position_embeddings=128000, norm_eps=1e-5,
    conv_L_cache=3, block_auto_adjust_ff_dim=True, block_multiple_of=256, block_ffn_dim_multiplier=1.0,
    full_attn_idxs=[2, 5, 8, 10, 12, 14],
)
PRETRAINED_ARCHITECTURES = {
    SIGLIP2_ID: SIGLIP2_BASE_VISION,
    PARAKEET_ID: PARAKEET_CTC_0_6B_ENCODER,
    LFM2_ID: LFM2_700M,
}

# Small random-init backbones: big enough to learn the synthetic cues, small enough for a CPU.
TINY_AUDIO_ENCODER = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    num_mel_bins=80, subsampling_conv_channels=32, conv_kernel_size=9, layerdrop=0.0,
    dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    # Parakeet's default init (std 0.02) shrinks the signal ~0.05x per subsampling conv, to ~1e-7 after
    # the stack; the LayerNorm after it then turns the first optimizer steps into noise and the random
    # encoder never learns. 0.2 keeps each conv close to unit gain (fan-in 9 to 32).
    initializer_range=0.2,
)
TINY_VISUAL_ENCODER = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    image_size=224, patch_size=16, num_channels=3,
)
SMALL_LFM2 = dict(
    hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
    num_key_value_heads=4, vocab_size=32, max_position_embeddings=512,
    layer_types=["conv", "full_attention", "conv", "full_attention"],
)
TINY_LFM2 = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=32, max_position_embeddings=64,
    layer_types=["conv", "full_attention"],
)


def get_preset(name: str) -> ModelConfig:
    """The ModelConfig of a named preset (tiny | lightweight | full)."""
    if name == "tiny":
        # Both layers of each 2-layer encoder are mixed, as in the bigger presets.
        return ModelConfig(
            preset="tiny",
            audio=AudioConfig(encoder_config=dict(TINY_AUDIO_ENCODER), output_dim=64, freeze_encoder=False),
            visual=VisualConfig(encoder_config=dict(TINY_VISUAL_ENCODER), temporal_heads=4, freeze_encoder=False),
            # Without modality dropout the audio branch, which learns faster, carries the whole av model and
            # the visual branch stays weak (synthetic clips: visual-only 0.38 inside the av model, 1.0 alone);
            # on one draw of synthetic data, dropping one modality for 30% of the clips took av validation
            # accuracy from 0.69-0.75 to 1.0 (one-off runs; tests/test_train.py has the figures).
            fusion=FusionConfig(backbone_config=dict(TINY_LFM2), output_dim=64, modality_dropout=0.3),
            classifier=ClassifierConfig(hidden_dims=(64,), dropout=0.1),
        )
    if name == "lightweight":
        return ModelConfig(
            preset="lightweight",
            audio=AudioConfig(encoder_id=PARAKEET_ID, encoder_revision=REVISIONS[PARAKEET_ID]),
            visual=VisualConfig(encoder_id=SIGLIP2_ID, encoder_revision=REVISIONS[SIGLIP2_ID]),
            fusion=FusionConfig(backbone_config=dict(SMALL_LFM2)),
        )
    if name == "full":
        return ModelConfig(
            preset="full",
            audio=AudioConfig(encoder_id=PARAKEET_ID, encoder_revision=REVISIONS[PARAKEET_ID]),
            visual=VisualConfig(encoder_id=SIGLIP2_ID, encoder_revision=REVISIONS[SIGLIP2_ID]),
            fusion=FusionConfig(backbone_id=LFM2_ID, backbone_revision=REVISIONS[LFM2_ID]),  # trained through LoRA
        )
    raise ConfigError(f"unknown preset {name!r}; choose one of {PRESETS}")


RECIPES = ("reference",)


def get_recipe(name: str) -> tuple[ModelConfig, TrainConfig]:
    """A named recipe: a preset and the training settings it is run with (`python -m fer_lib.cv --recipe NAME`).

    reference  the recipe the published RAVDESS results point to, not yet measured on RAVDESS: frozen
               SigLIP2 and Parakeet read through learnable layer mixes (cached in fp16, masked per epoch
               as augmentation), LFM2-700M trained through LoRA (`full`); modality dropout 0.2 so that
               one model serves audio-only, visual-only and both (the 6-fold table reports all three);
               label smoothing 0.1; lr 2e-4 for heads and adapters with warmup and cosine decay;
               early stopping on validation UAR (neutral has half the clips of the other classes).
    """
    if name != "reference":
        raise ConfigError(f"unknown recipe {name!r}; choose one of {RECIPES}")
    model = get_preset("full")
    model.fusion.modality_dropout = 0.2
    model.classifier.label_smoothing = 0.1
    train = TrainConfig(batch_size=8, grad_accum_steps=2, max_epochs=40, lr=2e-4, backbone_lr=1e-5,
                        warmup_ratio=0.05, early_stopping_patience=10, early_stopping_metric="uar")
    return model, train


# --------------------------------------------------------------------------------------------
# (De)serialisation: plain JSON, strict about unknown keys so a wrong file fails loudly
# --------------------------------------------------------------------------------------------


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a (nested) dict, as read from JSON; ConfigError (one line) for an unknown key or
    a value of the wrong type (`"num_frames": "16"`, `"lr": "1e-4"`), named with its path (`prefix` + field)."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping for {prefix.rstrip('.') or cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(prefix + k for k in unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        ftype = _NESTED.get((cls, name))
        if ftype is not None:
            value = from_dict(ftype, value, f"{prefix}{name}.")
        else:
            _check_type(value, hints[name], prefix + name)
            if isinstance(value, list) and name in _TUPLE_FIELDS:
                value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
               tuple: "a list"}


def _check_type(value, hint, name: str) -> None:
    """ConfigError unless the JSON value `value` fits the field type `hint` (int, float, str, bool, Optional,
    dict, tuple; a float field takes an integer, no field takes a bool for a number)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return
        hint = options[0]
    kind = typing.get_origin(hint) or hint
    if kind is Any:
        return
    if kind is tuple:
        if isinstance(value, (list, tuple)):
            args = typing.get_args(hint)
            items = args[:1] * len(value) if args[1:] == (Ellipsis,) else args
            if len(items) == len(value):
                for k, (item, item_hint) in enumerate(zip(value, items)):
                    _check_type(item, item_hint, f"{name}[{k}]")
                return
            raise ConfigError(f"{name} must be a list of {len(items)}, got {value!r}")
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return
    elif isinstance(value, kind):
        return
    raise ConfigError(f"{name} must be {_TYPE_NAMES[kind]}, got {value!r}")


def save_json(cfg, path: str | Path) -> Path:
    return atomic_write_text(path, json.dumps(to_dict(cfg), indent=2, sort_keys=True))


def load_json(cls, path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    return from_dict(cls, data)


_NESTED = {
    (ModelConfig, "input"): InputConfig,
    (ModelConfig, "audio"): AudioConfig,
    (ModelConfig, "visual"): VisualConfig,
    (ModelConfig, "fusion"): FusionConfig,
    (ModelConfig, "classifier"): ClassifierConfig,
    (PreprocessConfig, "input"): InputConfig,
}
_TUPLE_FIELDS = {"image_mean", "image_std", "hidden_dims", "media_types"}
