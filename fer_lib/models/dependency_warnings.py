"""The dependencies' warnings a user can do nothing about, filtered where the model is built (`build_model`).

What the notebooks 02-04 and the commands showed before this:

- transformers, at the first forward of LFM2: "`causal_conv1d_fn` is falling back to its reference
  PyTorch implementation because `causal_conv1d` is either not installed or doesn't support the device
  of the inputs. This is correct but much slower." (`transformers.integrations.hub_kernels`, once per
  kernel; transformers 5.17 on an H200 words its end differently, same logger, same first half). On a CPU there is no faster kernel, so it is dropped. On a GPU the fused kernel of the
  `causal-conv1d` package would be faster; then one line of ours says so on stderr, once per process.
- DeprecationWarning and FutureWarning raised inside torch, transformers and the other libraries the
  model is built from: about their own internals, to be fixed by their next release. Warnings they
  raise about fer_lib's calls point at fer_lib (stacklevel) and still show: those are ours to fix.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings

KERNEL_LOGGER = "transformers.integrations.hub_kernels"
FALLBACK = "is falling back to its reference PyTorch implementation"
DEPENDENCIES = r"(torch|torchvision|torchaudio|transformers|accelerate|peft|huggingface_hub|safetensors|facenet_pytorch)(\.|$)"
SLOWER_ON_GPU = ("note: LFM2's short convolutions run in plain PyTorch on this GPU, because the causal-conv1d package "
                 "(their fused kernel) is not installed: correct, but slower")


class KernelFallbackFilter(logging.Filter):
    """Drops transformers' kernel-fallback records; on a GPU without causal-conv1d, says so in one line, once."""

    def __init__(self):
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if FALLBACK not in record.getMessage():
            return True
        if not self.said and _fallback_costs_speed():
            self.said = True
            print(SLOWER_ON_GPU, file=sys.stderr, flush=True)
        return False


def _fallback_costs_speed() -> bool:
    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("causal_conv1d") is None


def quiet() -> None:
    """Install the filters (idempotent: a second model built in the same process adds nothing)."""
    logger = logging.getLogger(KERNEL_LOGGER)
    if not any(isinstance(f, KernelFallbackFilter) for f in logger.filters):
        logger.addFilter(KernelFallbackFilter())
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=DEPENDENCIES)
