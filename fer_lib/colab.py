"""Google Colab glue, guarded so that every call is a harmless no-op outside Colab.

Maintainers' advice this follows: `drive.mount` needs a person, so it is only called inside
Colab; Drive writes land late, so training ends with `drive.flush_and_unmount()`; secrets come
from `google.colab.userdata`, never from a prompt.

Drive can go away under a running notebook: after an idle drop, reads and writes under
/content/drive fail with OSError 107 (ENOTCONN, "transport endpoint is not connected"); after
`flush_and_unmount`, /content/drive is a plain folder of the runtime's own disk, where writes
succeed and vanish with the runtime. So code that writes to Drive checks that it is *mounted*
(`drive_unmounted`, `check_mounted`), never that the folder exists, and treats errno 107 as
"Drive is gone" (`drive_gone`), not as a failed run.

`CONTENT` is Colab's working folder, `/content`. The simulated Colab of the tests
(tests/test_colab.py) runs the notebooks with FER_COLAB_CONTENT pointing at a temporary folder; the
setup cell of the notebooks reads the same variable.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from fer_lib.errors import FerError
from fer_lib.fileio import atomic_write_bytes, atomic_write_text

CONTENT = Path(os.environ.get("FER_COLAB_CONTENT", "/content"))
DRIVE_MOUNT = CONTENT / "drive"
REPOSITORY = Path(__file__).resolve().parents[1]
REMOUNT = "from google.colab import drive; drive.mount('/content/drive', force_remount=True)"
# The GPUs a Colab runtime may get, with their memory in GB (nominal), for the memory check of notebook 03.
COLAB_GPUS = {"T4": 16, "L4": 24, "A100 40 GB": 40, "A100 80 GB": 80}


class ColabError(FerError):
    """The Colab runtime lacks something a step needs (Drive not mounted, no uploaded file, a failed install)."""


def in_colab() -> bool:
    return "google.colab" in sys.modules


def mount_drive() -> bool:
    """Mount Google Drive at /content/drive inside Colab (again after an unmount); False (and nothing done) elsewhere."""
    if not in_colab():
        return False
    if not os.path.ismount(DRIVE_MOUNT):
        from google.colab import drive

        drive.mount(str(DRIVE_MOUNT), force_remount=True)
    return True


def flush_drive() -> bool:
    """Make pending Drive writes land and unmount Drive (end of a notebook); no-op outside Colab."""
    if not in_colab() or not os.path.ismount(DRIVE_MOUNT):
        return False
    from google.colab import drive

    drive.flush_and_unmount()
    return True


def drive_unmounted(path: str | Path) -> bool:
    """True when `path` lies under Colab's Drive mount point and Drive is not mounted there now."""
    return Path(path).absolute().is_relative_to(DRIVE_MOUNT) and not os.path.ismount(DRIVE_MOUNT)


def drive_gone(exc: OSError) -> bool:
    """True for the error of a Drive mount that dropped (errno 107, ENOTCONN)."""
    return exc.errno == errno.ENOTCONN


def check_mounted(path: str | Path) -> None:
    """ColabError when `path` is on Drive and Drive is not mounted (writing there would be lost with the runtime)."""
    if drive_unmounted(path):
        raise ColabError(f"Google Drive is not mounted, so {path} is not on Drive: remount it ({REMOUNT}), "
                         "then run this again")


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


def prepare_runtime() -> None:
    """What the setup cell of every notebook calls once the code is there: installs, then widgets that render."""
    install_requirements()
    enable_widgets()


def install_requirements() -> None:
    """pip-install requirements-colab.txt once per runtime (never torch: see that file), at the versions the
    test suite passed with (constraints-colab.txt, made by scripts/lock.sh), showing pip's output."""
    requirements, constraints = REPOSITORY / "requirements-colab.txt", REPOSITORY / "constraints-colab.txt"
    stamp = CONTENT / ".fer_lib_requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes() + constraints.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return
    print(f"installing what Colab lacks ({requirements.name}, tested versions: {constraints.name}); a fresh "
          "runtime takes a minute or two", flush=True)
    command = [sys.executable, "-m", "pip", "install", "-r", str(requirements), "-c", str(constraints)]
    pip = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in pip.stdout:  # line by line, so that a long install shows it is alive
        print(line, end="", flush=True)
    if pip.wait():
        raise ColabError(f"`{' '.join(command[2:])}` failed (exit status {pip.returncode}); its output is above")
    atomic_write_text(stamp, digest)


def enable_widgets() -> bool:
    """In Colab with ipywidgets 8, turn on Colab's widget manager (without it no ipywidgets 8 widget, tqdm's
    notebook bars included, renders there); a no-op elsewhere. Returns True when it was turned on."""
    if not in_colab():
        return False
    try:
        import ipywidgets
        from google.colab import output

        if int(ipywidgets.__version__.split(".")[0]) >= 8:
            output.enable_custom_widget_manager()
            return True
    except Exception:  # an older Colab: its built-in manager renders the widgets
        pass
    return False


def upload_file(dest_dir: str | Path) -> Path:
    """Ask the person for one file (Colab's upload button) and save it in `dest_dir`."""
    if not in_colab():
        raise ColabError("no file given: set VIDEO to a video path (uploading needs Colab)")
    from google.colab import files

    uploaded = files.upload()
    if not uploaded:
        raise ColabError("no file was uploaded: run the cell again and pick a video")
    name, data = next(iter(uploaded.items()))
    return atomic_write_bytes(Path(dest_dir) / Path(name).name, data)
