"""Google Colab glue, guarded so that every call is a harmless no-op outside Colab.

Maintainers' advice this follows: `drive.mount` needs a person, so it is only called inside
Colab; Drive writes land late, so training ends with `drive.flush_and_unmount()`; secrets come
from `google.colab.userdata`, never from a prompt.
"""

from __future__ import annotations

import sys
from pathlib import Path


def in_colab() -> bool:
    return "google.colab" in sys.modules


def mount_drive(mountpoint: str = "/content/drive") -> bool:
    """Mount Google Drive inside Colab; returns False (and does nothing) anywhere else."""
    if not in_colab():
        return False
    from google.colab import drive

    if not (Path(mountpoint) / "MyDrive").is_dir():
        drive.mount(mountpoint)
    return True


def flush_drive() -> bool:
    """Make pending Drive writes land (end of training); no-op outside Colab."""
    if not in_colab():
        return False
    from google.colab import drive

    drive.flush_and_unmount()
    return True


def colab_secret(name: str) -> str | None:
    """A Colab secret (e.g. WANDB_API_KEY), or None when absent or not in Colab. Never prompts."""
    if not in_colab():
        return None
    try:
        from google.colab import userdata

        return userdata.get(name)
    except Exception:  # SecretNotFoundError, NotebookAccessError: both mean "not available"
        return None


def describe_runtime() -> dict:
    """What a training run depends on: GPU, its memory, torch and CUDA versions."""
    import torch
    import transformers

    info = {"torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.version.cuda, "gpu": None, "gpu_memory_gb": None, "in_colab": in_colab()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def install_requirements() -> None:
    """pip-install requirements-colab.txt once per runtime (never torch: see that file)."""
    import hashlib
    import subprocess

    requirements = Path(__file__).resolve().parents[1] / "requirements-colab.txt"
    stamp = Path("/tmp/fer_lib_requirements.sha256")
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
    stamp.write_text(digest)


def upload_file(dest_dir: str | Path) -> Path:
    """Ask the person for one file (Colab's upload button) and save it in `dest_dir`."""
    if not in_colab():
        raise ValueError("no file given: set VIDEO to a video path (uploading needs Colab)")
    from google.colab import files

    uploaded = files.upload()
    if not uploaded:
        raise ValueError("no file was uploaded")
    name, data = next(iter(uploaded.items()))
    path = Path(dest_dir) / Path(name).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
