"""EmotionModel: audio branch + visual branch -> fusion -> classifier, and `build_model`, the way to make one.

    batch["audio"]  (B, 48000)           --AudioBranch-->  audio_embeds  (B, 8, Da) --+
                                                                                      +--FusionModule--> (B, 8, Df)
    batch["frames"] (B, 16, 3, 224, 224) --VisualBranch--> visual_embeds (B, 8, Dv) --+
    fused_embeds (B, 8, Df) --EmotionClassifier--> logits (B, 8 classes)

One set of weights serves three modes (`modalities=`): audio-only, visual-only and both. A modality
that is not requested is not computed at all; fusion puts its learned "missing" token in its place.
In training, modality dropout does the same per sample, so the model learns all three modes at once.

Each branch splits into `forward_features` (the pretrained encoder, usually frozen) and `forward_head`
(everything learned on top). A batch may carry `audio_features` / `visual_features` precomputed by
`forward_features` (the embedding cache); the encoder is then skipped.

Words: a *branch* is the sub-network of one modality (`AudioBranch`, `VisualBranch`); a *part* is one
of the three large pretrained modules that can be frozen and thawed (PRETRAINED_PARTS): "audio_encoder"
(Parakeet, inside the audio branch), "visual_encoder" (SigLIP, inside the visual branch) and "backbone"
(LFM2, inside fusion). A frozen part stays in eval mode when the model trains, so dropout or batch-norm
statistics never change what it computes (and what the embedding cache holds). A pretrained part
that trains through LoRA adapters (`fer_lib.models.lora`: the LFM2 backbone of `full`) is *adapted*:
only its adapters train. The weights of a part that is pretrained and frozen or adapted can be re-made
from its source (`parts_from_source`), so `trainable_state_dict` leaves them out of checkpoints (an
adapted part's adapters are kept), and `fer_lib.models.fingerprint` checks they are the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from fer_lib import modalities as modality_names
from fer_lib.config import ModelConfig
from fer_lib.errors import FerError
from fer_lib.models import dependency_warnings, lora
from fer_lib.models.audio import AudioBranch, check_frontend
from fer_lib.models.classifier import EmotionClassifier
from fer_lib.models.fusion import FusionModule
from fer_lib.models.pretrained import load_part
from fer_lib.models.visual import VisualBranch

PRETRAINED_PARTS = {"audio_encoder": "audio.encoder", "visual_encoder": "visual.tower", "backbone": "fusion.backbone"}


class CheckpointMismatchError(FerError):
    """Saved weights do not fit the model built from the config; the message is one line, `.problems` its core
    ("1 unexpected (e.g. ...)")."""

    def __init__(self, message: str, problems: str):
        super().__init__(message)
        self.problems = problems


@dataclass
class EmotionModelOutput(ModelOutput):
    """loss: cross-entropy when the batch has labels; logits (B, C); per-segment embeddings (B, S, D)
    of each computed branch (None when not requested) and of the fusion."""

    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    audio_embeds: Optional[torch.Tensor] = None
    visual_embeds: Optional[torch.Tensor] = None
    fused_embeds: Optional[torch.Tensor] = None


class EmotionModel(nn.Module):
    """Audio-visual emotion classifier over time-aligned segments. Build it with `build_model(cfg)`."""

    def __init__(self, cfg: ModelConfig, audio_encoder: nn.Module, vision_tower: nn.Module, backbone: nn.Module,
                 adapted: Iterable[str] = ()):
        super().__init__()
        self.config = cfg
        segments = cfg.input.num_segments
        self.audio = AudioBranch(cfg.audio, audio_encoder, cfg.input.sample_rate, segments)
        self.visual = VisualBranch(cfg.visual, vision_tower, cfg.input)
        self.fusion = FusionModule(cfg.fusion, backbone, cfg.audio.output_dim, self.visual.output_dim, segments)
        self.classifier = EmotionClassifier(cfg.classifier, cfg.fusion.output_dim)
        self.frozen: set[str] = set()
        self.adapted: set[str] = set(adapted)  # parts that train through LoRA adapters only

    def forward(
        self, batch: dict[str, torch.Tensor], modalities: Iterable[str] = modality_names.MODALITIES
    ) -> EmotionModelOutput:
        """Classify a batch from the loader.

        batch: "audio" (B, S) float and optional "audio_lengths" (B,) valid samples; "frames" (B, T, 3, H, W)
        uint8 and optional "landmarks" (B, T, 5, 2) crop pixels; optional "label" (B,) for the loss; or,
        instead of a raw input, "audio_features" / "visual_features" from `forward_features` (these win).
        modalities: the branches to run, a non-empty subset of ("audio", "visual").
        """
        modalities = modality_names.check(modalities)
        audio_embeds = self._audio_embeds(batch) if "audio" in modalities else None  # (B, S, Da)
        visual_embeds = self._visual_embeds(batch) if "visual" in modalities else None  # (B, S, Dv)
        audio_present, visual_present = self.modality_presence(audio_embeds, visual_embeds)  # (B,), (B,)
        fused_embeds = self.fusion(audio_embeds, visual_embeds, audio_present, visual_present)  # (B, S, Df)
        logits = self.classifier(fused_embeds)  # (B, C)

        loss = None
        if "label" in batch:
            loss = F.cross_entropy(
                logits.float(), batch["label"], label_smoothing=self.config.classifier.label_smoothing
            )
        return EmotionModelOutput(
            loss=loss, logits=logits, audio_embeds=audio_embeds, visual_embeds=visual_embeds, fused_embeds=fused_embeds
        )

    def _audio_embeds(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lengths = batch.get("audio_lengths")
        if "audio_features" in batch:
            features = batch["audio_features"]
        elif "audio" in batch:
            features = self.audio.forward_features(batch["audio"], lengths)
        else:
            raise ValueError("audio was requested but the batch has neither 'audio' nor 'audio_features'")
        return self.audio.forward_head(features, lengths)

    def _visual_embeds(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "visual_features" in batch:
            features = batch["visual_features"]
        elif "frames" in batch:
            features = self.visual.forward_features(batch["frames"], batch.get("landmarks"))
        else:
            raise ValueError("visual was requested but the batch has neither 'frames' nor 'visual_features'")
        return self.visual.forward_head(features)

    def modality_presence(
        self, audio_embeds: Optional[torch.Tensor], visual_embeds: Optional[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample flags for which modality fusion sees; modality dropout (training only) clears one of them."""
        computed = audio_embeds if audio_embeds is not None else visual_embeds
        batch, device = computed.shape[0], computed.device
        audio_present = torch.full((batch,), audio_embeds is not None, device=device)
        visual_present = torch.full((batch,), visual_embeds is not None, device=device)
        rate = self.config.fusion.modality_dropout
        if self.training and rate > 0 and audio_embeds is not None and visual_embeds is not None:
            dropped = torch.rand(batch, device=device) < rate
            drop_audio = torch.rand(batch, device=device) < 0.5  # which one; never both
            audio_present = ~(dropped & drop_audio)
            visual_present = ~(dropped & ~drop_audio)
        return audio_present, visual_present

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, device=None, allow_other_frozen_weights: bool = False
                        ) -> "EmotionModel":
        """A trained model in eval mode, from the Hugging Face Hub (`"USER/NAME"`, `"hf://USER/NAME@REVISION"`)
        or a checkpoint or run folder: `fer_lib.training.checkpoint.load_model`, the loader every command uses."""
        from fer_lib.training.checkpoint import HUB_PREFIX, is_hub_id, load_model

        if not is_hub_id(str(checkpoint)) and not Path(checkpoint).expanduser().exists() and str(checkpoint).count("/") == 1:
            checkpoint = HUB_PREFIX + str(checkpoint)  # USER/NAME, as transformers' from_pretrained takes it
        return load_model(checkpoint, device, allow_other_frozen_weights).model

    # ---- freezing and checkpoints ------------------------------------------------------------------

    def set_trainable(self, part: str, trainable: bool) -> None:
        """Freeze or thaw one of PRETRAINED_PARTS (an adapted part: its adapters); a frozen part also stays in
        eval mode (see `train`)."""
        module = self.part_module(part)
        for name, parameter in module.named_parameters():
            parameter.requires_grad_(trainable and (part not in self.adapted or lora.is_adapter(name)))
        if trainable:
            self.frozen.discard(part)
        else:
            self.frozen.add(part)
        module.train(self.training and trainable)

    def train(self, mode: bool = True) -> "EmotionModel":
        super().train(mode)
        for part in self.frozen:
            self.part_module(part).eval()
        return self

    def pretrained_sources(self) -> dict[str, str]:
        """Part -> hub id or directory, for the parts whose weights come from a checkpoint."""
        sources = {
            "audio_encoder": self.config.audio.encoder_id,
            "visual_encoder": self.config.visual.encoder_id,
            "backbone": self.config.fusion.backbone_id,
        }
        return {part: source for part, source in sources.items() if source}

    def parts_from_source(self) -> list[str]:
        """The pretrained parts whose weights are not trained here (frozen, or under adapters): re-made from source."""
        return [part for part in self.pretrained_sources() if part in self.frozen or part in self.adapted]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """All parameters and buffers except the weights `parts_from_source` re-makes (adapters are kept)."""
        skipped = tuple(PRETRAINED_PARTS[part] + "." for part in self.parts_from_source())
        return {name: value for name, value in self.state_dict().items()
                if not name.startswith(skipped) or lora.is_adapter(name)}

    def load_trainable_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load weights saved by `trainable_state_dict`, strictly.

        Every weight `trainable_state_dict` would save must be present with the same shape, and no
        name may be foreign to this model. Weights of a frozen pretrained part are accepted too, so
        a checkpoint saved after fine-tuning an encoder loads into a freshly built model.
        """
        own = self.state_dict()
        missing = sorted(set(self.trainable_state_dict()) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        mismatched = sorted(
            name for name in set(state_dict) & set(own) if tuple(state_dict[name].shape) != tuple(own[name].shape)
        )
        problems = [
            f"{len(names)} {kind} (e.g. {names[0]})"
            for kind, names in (("missing", missing), ("unexpected", unexpected), ("with another shape", mismatched))
            if names
        ]
        if problems:
            raise CheckpointMismatchError(
                f"checkpoint does not fit this {self.config.preset!r} model: weights {'; '.join(problems)}; "
                "was it saved from another preset or architecture?", "; ".join(problems)
            )
        self.load_state_dict(state_dict, strict=False)

    def part_module(self, part: str) -> nn.Module:
        """The module of one of PRETRAINED_PARTS."""
        if part not in PRETRAINED_PARTS:
            raise ValueError(f"unknown part {part!r}; choose one of {tuple(PRETRAINED_PARTS)}")
        return self.get_submodule(PRETRAINED_PARTS[part])


def build_model(cfg: ModelConfig, random_init: bool = False) -> EmotionModel:
    """Validate `cfg`, load or create the three backbones, assemble the model and freeze what the config says.

    random_init=True builds every backbone with random weights, including those with a hub id (using
    the architecture in `PRETRAINED_ARCHITECTURES`): the real shapes without a download. Under
    `torch.device("meta")` it allocates nothing, which is how `sizes` counts the full model.
    A pretrained backbone that trains gets LoRA adapters (`fusion.lora_rank` > 0); a pretrained audio
    encoder is checked against its own preprocessor configuration (`check_frontend`). The dependencies'
    warnings a user can do nothing about are filtered from here on (`dependency_warnings`).
    """
    cfg.validate()
    dependency_warnings.quiet()
    audio, visual, fusion = cfg.audio, cfg.visual, cfg.fusion
    audio_encoder = load_part("audio_encoder", audio.encoder_id, audio.encoder_config, random_init, audio.encoder_revision)
    if audio.encoder_id and not random_init:
        check_frontend(audio, cfg.input.sample_rate, audio.encoder_id, audio.encoder_revision)
    backbone = load_part("backbone", fusion.backbone_id, fusion.backbone_config, random_init, fusion.backbone_revision)
    adapted = fusion.backbone_id is not None and not fusion.freeze_backbone and fusion.lora_rank > 0
    model = EmotionModel(
        cfg,
        audio_encoder=audio_encoder,
        vision_tower=load_part("visual_encoder", visual.encoder_id, visual.encoder_config, random_init,
                               visual.encoder_revision),
        backbone=lora.add_adapters(backbone, fusion) if adapted else backbone,
        adapted=("backbone",) if adapted else (),
    )
    model.set_trainable("audio_encoder", not cfg.audio.freeze_encoder)
    model.set_trainable("visual_encoder", not cfg.visual.freeze_encoder)
    model.set_trainable("backbone", not cfg.fusion.freeze_backbone)
    return model

