"""LoRA adapters (peft) for the LFM2 fusion backbone: how a pretrained LFM2 is trained.

Fine-tuning all of LFM2-700M trains 642M weights, and a checkpoint then holds them with two AdamW
moments each (about 8 GB). Low-rank adapters on its linear layers train a few million instead and
leave the pretrained weights as they were, so a checkpoint holds the adapters and the heads only and
the base is reloaded from the hub at its pinned revision.

peft knows no default target modules for LFM2. Its linear layers are q_proj, k_proj, v_proj and
out_proj (attention blocks), in_proj and out_proj (short-convolution blocks) and w1, w2, w3 (the
SwiGLU feed-forward); all get adapters. The depthwise convolution of the convolution blocks is left
alone: it has a handful of weights per channel and no low-rank structure to exploit.
"""

from __future__ import annotations

from torch import nn

from fer_lib.config import FusionConfig

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3")
ADAPTER_MARK = "lora_"  # in the name of every adapter tensor peft adds (lora_A, lora_B)


def add_adapters(backbone: nn.Module, cfg: FusionConfig) -> nn.Module:
    """`backbone` with LoRA adapters of rank `cfg.lora_rank` injected in place; only the adapters train."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=list(TARGET_MODULES), bias="none")
    return inject_adapter_in_model(config, backbone)


def is_adapter(name: str) -> bool:
    """True for the name of a LoRA adapter tensor (`...q_proj.lora_A.default.weight`)."""
    return ADAPTER_MARK in name
