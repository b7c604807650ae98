"""How big a configuration is: parameters per component, an analytical training-memory estimate, and
what a run stores (a checkpoint, the embedding cache).

    python -m fer_lib.models.sizes --config_type full --batch_size 8 --precision bf16

All work on the real architectures without downloading anything: `build_for_sizing` builds the model
with random init on the meta device, which allocates no memory. `checkpoint_bytes` and
`embedding_cache_bytes` are computed from the shapes (bench/storage.py writes them into the README).
"""

from __future__ import annotations

import math
import sys
from typing import Union

import torch
from torch import nn

from fer_lib import cli
from fer_lib.config import PRESETS, ConfigError, ModelConfig, get_preset
from fer_lib.models.model import EmotionModel, build_model

# Component -> parameter-name prefix. The first match wins, so each encoder precedes its branch's head.
COMPONENTS = {
    "audio_encoder": "audio.encoder.",
    "audio_head": "audio.",
    "visual_encoder": "visual.tower.",
    "visual_head": "visual.",
    "backbone": "fusion.backbone.",
    "fusion_head": "fusion.",
    "classifier": "classifier.",
}
ACTIVATION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
CONFORMER_LAYER_COST = 1.5  # in transformer layers: two half-step FFNs and a convolution module beside attention
POOLED_TOKEN_TENSORS = 4  # input, keys, values, attention weights kept per token by an AttentionPool


def build_for_sizing(cfg: ModelConfig) -> EmotionModel:
    """The model of `cfg` with its real architectures on the meta device: shapes only, no memory, no download."""
    with torch.device("meta"):
        return build_model(cfg, random_init=True)


def parameter_table(model: nn.Module) -> dict[str, dict[str, int]]:
    """{component: {"total": n, "trainable": n}} for each of COMPONENTS, plus a "total" row."""
    table = {name: {"total": 0, "trainable": 0} for name in [*COMPONENTS, "total"]}
    for name, parameter in model.named_parameters():
        component = next(component for component, prefix in COMPONENTS.items() if name.startswith(prefix))
        for row in (table[component], table["total"]):
            row["total"] += parameter.numel()
            row["trainable"] += parameter.numel() if parameter.requires_grad else 0
    return table


def estimate_training_memory(
    model_or_cfg: Union[EmotionModel, ModelConfig], batch_size: int, precision: str = "bf16"
) -> dict[str, float]:
    """Training memory in bytes by kind, plus "total_gb". An estimate to choose a batch size, not a measurement.

    weights      every parameter in fp32 (autocast computes in 16 bit but keeps fp32 weights)
    gradients    fp32, trainable parameters only
    optimizer    AdamW's two fp32 moments, trainable parameters only
    activations  what backpropagation keeps, for the parts it runs through: a trainable encoder, and
                 always the backbone and the heads (the fusion projections below the backbone train).
                 A frozen encoder keeps nothing, since no graph is recorded for it. Per transformer
                 layer s*b*h*(34 + 5*a*s/h) bytes in 16 bit, twice that in fp32 (Korthikanti et al.,
                 2022, without recomputation); a Conformer block counts as 1.5 layers; each token an
                 attention pool reads keeps about four tensors.
    Not included: the CUDA context and allocator slack (about 1 GB in practice) and the batch itself.
    A batch_size below 1 or an unknown precision is a ConfigError.
    """
    if precision not in ACTIVATION_BYTES:
        raise ConfigError(f"precision must be one of {tuple(ACTIVATION_BYTES)}, got {precision!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    model = model_or_cfg if isinstance(model_or_cfg, EmotionModel) else build_for_sizing(model_or_cfg)
    counts = parameter_table(model)["total"]
    sizes = {
        "weights": 4 * counts["total"],
        "gradients": 4 * counts["trainable"],
        "optimizer": 8 * counts["trainable"],
        "activations": _activation_bytes(model, batch_size, ACTIVATION_BYTES[precision]),
    }
    sizes["total"] = sum(sizes.values())
    sizes["total_gb"] = sizes["total"] / 1024**3
    return sizes


def _activation_bytes(model: EmotionModel, batch_size: int, activation_bytes: int) -> int:
    cfg = model.config
    frames, segments = cfg.input.num_frames, cfg.input.num_segments
    tower, encoder, backbone = model.visual.tower.model.config, model.audio.encoder.config, model.fusion.backbone.config
    patches = (cfg.input.image_size // tower.patch_size) ** 2
    audio_frames = int(model.audio.encoder_lengths(torch.tensor([cfg.input.num_samples]))[0])

    def layers(count: float, seq: int, batch: int, hidden: int, heads: int) -> float:
        return count * seq * batch * hidden * (34 + 5 * heads * seq / hidden) * activation_bytes / 2

    total = layers(
        backbone.num_hidden_layers, 2 * segments, batch_size, backbone.hidden_size, backbone.num_attention_heads
    )
    if "visual_encoder" not in model.frozen:
        total += layers(
            tower.num_hidden_layers, patches, batch_size * frames, tower.hidden_size, tower.num_attention_heads
        )
    if "audio_encoder" not in model.frozen:
        total += layers(
            CONFORMER_LAYER_COST * encoder.num_hidden_layers, audio_frames, batch_size,
            encoder.hidden_size, encoder.num_attention_heads,
        )
    roi_values = frames * cfg.visual.roi_tokens * tower.hidden_size
    pooled_values = batch_size * (roi_values + audio_frames * encoder.hidden_size)
    total += POOLED_TOKEN_TENSORS * pooled_values * activation_bytes
    return int(total)


def checkpoint_bytes(model: EmotionModel) -> dict[str, int]:
    """A checkpoint's size, computed: "weights" (what `trainable_state_dict` saves, in its dtypes), "optimizer"
    (AdamW's two fp32 moments per trainable parameter) and "total". RNG and progress files are a few kB."""
    weights = sum(t.numel() * t.element_size() for t in model.trainable_state_dict().values())
    optimizer = 8 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"weights": weights, "optimizer": optimizer, "total": weights + optimizer}


def feature_shapes(model: EmotionModel) -> dict[str, tuple[int, ...]]:
    """The shape of one clip's cached encoder features, as `forward_features` returns them (without the batch):
    audio (K, L, H), visual (K, T, roi_tokens, D)."""
    cfg = model.config
    audio_frames = int(model.audio.encoder_lengths(torch.tensor([cfg.input.num_samples]))[0])
    return {"audio": (len(model.audio.layer_mix.layers), audio_frames, model.audio.encoder.config.hidden_size),
            "visual": (len(model.visual.layer_mix.layers), cfg.input.num_frames, cfg.visual.roi_tokens,
                       model.visual.tower.width)}


def embedding_cache_bytes(model: EmotionModel) -> dict[str, int]:
    """Bytes per clip of each modality's embedding-cache store (float16 layer outputs plus an int64 length),
    computed from `feature_shapes`."""
    return {modality: 2 * math.prod(shape) + 8 for modality, shape in feature_shapes(model).items()}


def format_parameter_table(table: dict[str, dict[str, int]]) -> str:
    lines = [f"{'component':<16}{'total':>16}{'trainable':>16}"]
    lines += [f"{name:<16}{row['total']:>16,}{row['trainable']:>16,}" for name, row in table.items()]
    return "\n".join(lines)


@cli.command()
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.models.sizes",
                                description="Parameter counts and training-memory estimate of a preset.")
    parser.add_argument("--config_type", choices=PRESETS, default="full", help="model preset")
    parser.add_argument("--batch_size", type=cli.POSITIVE_INT, default=8)
    parser.add_argument("--precision", choices=tuple(ACTIVATION_BYTES), default="bf16")
    args = parser.parse_args(argv)

    model = build_for_sizing(get_preset(args.config_type))
    print(format_parameter_table(parameter_table(model)))
    memory = estimate_training_memory(model, args.batch_size, args.precision)
    print(f"\ntraining memory, batch {args.batch_size}, {args.precision} (estimate):")
    for kind in ("weights", "gradients", "optimizer", "activations", "total"):
        print(f"  {kind:<12}{memory[kind] / 1024**3:>8.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
