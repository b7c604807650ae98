"""One forward and backward pass in every modality mode: the check to run before spending GPU hours.

Notebook 02 runs it on a real batch from the cache. The same weights must serve audio only, visual
only and both; in each mode the loss must be finite and gradients must reach the trainable parameters.
"""

from __future__ import annotations

import math

import torch

from fer_lib.modalities import FLAGS, display_name


def forward_backward(model: torch.nn.Module, batch: dict) -> list[dict]:
    """Per mode (av, a, v): logits shape, loss, and how many trainable tensors got a gradient.

    Raises RuntimeError when a loss is not finite or no trainable tensor gets a gradient.
    """
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for flag, modalities in FLAGS.items():
        model.zero_grad(set_to_none=True)
        output = model(batch, modalities=modalities)
        output.loss.backward()
        with_grad = sum(p.grad is not None for p in trainable)
        rows.append({"mode": display_name(flag), "logits": tuple(output.logits.shape), "loss": output.loss.item(),
                     "tensors_with_grad": with_grad, "trainable_tensors": len(trainable)})
        if not math.isfinite(rows[-1]["loss"]) or not with_grad:
            raise RuntimeError(f"{display_name(flag)}: loss {rows[-1]['loss']}, {with_grad} tensors with a gradient")
    model.zero_grad(set_to_none=True)
    return rows


def format_rows(rows: list[dict]) -> str:
    return "\n".join(f"{r['mode']:>13}: logits {r['logits']}, loss {r['loss']:.3f}, {r['tensors_with_grad']} of "
                     f"{r['trainable_tensors']} trainable tensors got gradients" for r in rows)
