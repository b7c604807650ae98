"""AdamW with two learning rates, and the warmup + cosine schedule.

Parameter groups:
- a pretrained part that is being fine-tuned (a part with a hub id/directory that is not
  frozen: SigLIP2 in stage 3, LFM2-700M in `full`) learns at `backbone_lr`: its weights are already
  good and a head-sized step would wreck them;
- everything else that trains (heads, fusion, layer-mix weights, random-init backbones, and the LoRA
  adapters of a pretrained LFM2, which start at zero and need a head-sized step) learns at `lr`.
Biases and normalisation weights (1-D tensors) get no weight decay, as is usual for transformers.

The schedule is transformers' linear warmup over `warmup_ratio` of all optimizer steps, then cosine
decay to zero at the last step of `max_epochs` (early stopping may end the run before that). A
resumed run whose `max_epochs` changed continues on the schedule built for the new length, from the
step it had reached (`restore_schedule`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from fer_lib.config import TrainConfig
from fer_lib.models import PRETRAINED_PARTS, EmotionModel


def build_optimizer(model: EmotionModel, cfg: TrainConfig) -> torch.optim.AdamW:
    finetuned = tuple(PRETRAINED_PARTS[part] + "." for part in model.pretrained_sources()
                      if part not in model.frozen and part not in model.adapted)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((name.startswith(finetuned), param.ndim >= 2), []).append(param)
    return torch.optim.AdamW(
        [
            {"params": params, "lr": cfg.backbone_lr if backbone else cfg.lr, "name": "backbone" if backbone else "heads",
             "weight_decay": cfg.weight_decay if decayed else 0.0}
            for (backbone, decayed), params in sorted(groups.items())
        ]
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.max_epochs * steps_per_epoch
    return get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * total), total)


def restore_schedule(scheduler, state: dict) -> None:
    """Load a saved schedule position (`scheduler.state_dict()`) into `scheduler`, built for this run's length.

    The saved state holds the step, not the schedule's shape, but the optimizer's restored learning
    rates are those of the saved schedule; they are set here from this schedule at that step, so the
    next step already follows it. With an unchanged length they are the saved values, bit for bit.
    """
    scheduler.load_state_dict(state)
    rates = [base * rate(scheduler.last_epoch) for base, rate in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, rates):
        group["lr"] = lr
