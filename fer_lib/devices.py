"""The torch device a command runs on: the default, and a one-line error for a device this machine lacks.

    devices.resolve(None)       cuda when a GPU is visible, else cpu
    devices.resolve("cuda:1")   DeviceError unless this machine has a second GPU
    devices.resolve("tpu")      DeviceError: not a device fer_lib runs on

torch itself accepts `torch.device("cuda:7")` on any machine and fails only at the first tensor moved
there, with a multi-line driver message; evaluation and prediction resolve their `device` argument
here first, before any work, so that `--device cuda:7` is one line and exit status 2. (torch is
imported when a device is resolved, not with this module: the commands' `--help` stays fast.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

from fer_lib.errors import FerError

if TYPE_CHECKING:
    import torch

SUPPORTED = ("cpu", "cuda", "cuda:N", "mps")


class DeviceError(FerError):
    """The device asked for does not exist on this machine; the message is one line."""


def resolve(name: Optional[Union[str, "torch.device"]] = None) -> "torch.device":
    """The torch.device for `name` (None: cuda when available, else cpu); DeviceError if it is not usable here."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"unknown device {str(name)!r}: use one of {', '.join(SUPPORTED)}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {str(name)!r}: no CUDA GPU is visible on this machine; use cpu "
                              "(in Colab: Runtime > Change runtime type > GPU)")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {str(name)!r}: this machine has {count} GPU{'s' if count > 1 else ''} "
                              f"(cuda:0{f' .. cuda:{count - 1}' if count > 1 else ''})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {str(name)!r}: Apple's MPS is not available on this machine; use cpu")
    elif device.type != "cpu":
        raise DeviceError(f"device {str(name)!r} is not one fer_lib runs on: use one of {', '.join(SUPPORTED)}")
    return device
