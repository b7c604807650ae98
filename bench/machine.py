"""Which machine a figure was measured on: every result in bench/results.json carries this."""

from __future__ import annotations

import os
import platform


def describe_machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_label(info: dict) -> str:
    return info.get("gpu") or f"{info['cpu']} ({info['cores']} cores)"
