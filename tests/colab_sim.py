"""The simulated Colab shared by tests/test_colab.py and tests/test_lifecycle.py.

Each notebook runs in a kernel of its own with a `/content` of its own (FER_COLAB_CONTENT), as each
Colab notebook gets a fresh runtime, and with the fake `google.colab` of tests/fake_colab imported at
start, as Colab does. Google Drive is a folder of the test (`Colab.drive`) that the fake `drive.mount`
shows at `/content/drive`; it is all that persists from one runtime to the next. With `real_mounts`
(root, and a machine that lets the test mount), that folder is a tmpfs and `drive.mount` bind-mounts
it, so `os.path.ismount` is the real one; elsewhere the mount is a symlink and `ismount` is wrapped.
The setup cell's REPO_URL form field is set to a local bare Git repository holding this checkout as it
is, so the code the notebooks run is the code they cloned (the kernel's PYTHONPATH holds only the fake
package). pip runs with PIP_NO_INDEX: it finds everything installed and may change nothing.

A runtime may run on another host (`host`: its kernel in a UTS namespace of its own, `unshare -u`),
as a new Colab runtime is another machine.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fer_lib import notebook_tools

REPO = Path(__file__).resolve().parents[1]
FAKE_COLAB = Path(__file__).resolve().parent / "fake_colab"
INSTALL_STAMP = ".fer_lib_requirements.sha256"  # fer_lib.colab.install_requirements: installed once per runtime


def bare_repository(destination: Path) -> str:
    """A file:// URL of a bare Git repository holding this checkout's files as they are now."""
    work = destination / "checkout"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    git = ["git", "-c", "user.name=simulated colab", "-c", "user.email=colab@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "this checkout"]):
        subprocess.run(git + command, cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(destination / "fer_lib.git")], check=True)
    return f"file://{destination / 'fer_lib.git'}"


@functools.cache
def can_mount() -> bool:
    """Whether this machine lets the tests mount (a tmpfs, bind mounts): root without a seccomp wall."""
    probe = Path(f"/tmp/.fer_mount_probe_{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True).returncode:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


@functools.cache
def can_rename_host() -> bool:
    """Whether `unshare -u` gives a process a host name of its own here."""
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-u", "sh", "-c", "hostname other && hostname"], capture_output=True, text=True).stdout.strip() == "other"


class Colab:
    """Fresh Colab runtimes sharing one Google Drive (`drive`, holding MyDrive/)."""

    def __init__(self, root: Path, repo_url: str, real_mounts: bool = False, preinstalled: bool = False):
        """`preinstalled`: each runtime has installed requirements-colab.txt already (the setup cell skips pip)."""
        self.root, self.repo_url, self.preinstalled = root, repo_url, preinstalled
        self.drive = root / "google_drive"
        self.drive.mkdir(parents=True)
        self.real_mounts = real_mounts
        if real_mounts:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(self.drive)], check=True)
        (self.drive / "MyDrive").mkdir()
        startup = root / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-colab.py").write_text("import google.colab\n")

    def close(self) -> None:
        """Unmount what the runtimes left mounted (a killed kernel unmounts nothing), then the Drive store."""
        mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounted if m.startswith(str(self.root))), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)

    @property
    def fer(self) -> Path:
        """MyDrive/fer: the notebooks' default root in Colab."""
        return self.drive / "MyDrive" / "fer"

    @property
    def smoke(self) -> Path:
        """MyDrive/fer/smoke: the root of SMOKE mode, where the smoke notebooks hand results to one another."""
        return self.fer / "smoke"

    def content(self, runtime: str) -> Path:
        """The runtime's /content."""
        return self.root / f"content_{runtime}"

    def log(self, runtime: str) -> list[dict]:
        path = self.content(runtime) / "fake_colab.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def run(self, name: str, parameters: dict, form: dict | None = None, drop: dict | None = None,
            runtime: str | None = None, host: str | None = None, env: dict | None = None, again: bool = False):
        """Run notebook `name` in a fresh runtime (named `runtime`, default `name`; `again`: in the same
        runtime once more), its kernel on `host` (default: this machine's); returns the executed notebook.
        A failed cell raises PapermillExecutionError; the notebook is saved anyway (`executed`). `drop`:
        FAKE_COLAB_DRIVE_DROP (tests/fake_colab/google/colab/drive.py); `env`: more environment variables."""
        runtime = runtime or name
        content = self.content(runtime)
        content.mkdir(exist_ok=again)
        variables = {"FER_COLAB_CONTENT": str(content), "FAKE_COLAB_DRIVE": str(self.drive),
                     "FAKE_COLAB_LOG": str(content / "fake_colab.jsonl"), "IPYTHONDIR": str(self.root / "ipython"),
                     "PYTHONPATH": str(FAKE_COLAB), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                     "FAKE_COLAB_DRIVE_DROP": json.dumps(drop) if drop else "",
                     "FAKE_COLAB_REAL_MOUNT": "1" if self.real_mounts else "", **(env or {})}
        if host and can_rename_host():
            variables["JUPYTER_PATH"] = str(self._kernel_on(host))
        elif host:  # no UTS namespace here: the fake google.colab tells the kernel its host name
            variables["FAKE_COLAB_HOSTNAME"] = host
        if self.preinstalled:
            mark_installed(content)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in variables.items():
                patch.setenv(key, value)
            return notebook_tools.execute(notebook_tools.NOTEBOOK_DIR / f"{name}.ipynb", self.executed(runtime),
                                          parameters, cwd=content, form={"REPO_URL": self.repo_url, **(form or {})})

    def _kernel_on(self, host: str) -> Path:
        """A Jupyter path whose `python3` kernel runs with host name `host` (its own UTS namespace)."""
        path = self.root / f"jupyter_{host}"
        spec = path / "kernels" / "python3" / "kernel.json"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(json.dumps({
            "argv": ["unshare", "-u", "sh", "-c", f'hostname {host} && exec "$@"', "sh", sys.executable, "-m",
                     "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python 3 on {host}", "language": "python"}))
        return path

    def executed(self, runtime: str):
        return self.content(runtime) / "executed.ipynb"

    def code_cells(self, runtime: str) -> list:
        return [cell for cell in nbformat.read(self.executed(runtime), as_version=4).cells if cell.cell_type == "code"]


def mark_installed(content: Path) -> None:
    """A runtime folder whose packages count as installed (the setup cell's stamp), so that pip is not run again:
    test_colab's Run All shows that it runs."""
    content.mkdir(parents=True, exist_ok=True)
    (content / INSTALL_STAMP).write_text(hashlib.sha256((REPO / "requirements-colab.txt").read_bytes()).hexdigest())


def outputs(notebook, kind: str = "") -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
            if not kind or out.get("output_type") == kind]


def text_of(notebook) -> str:
    """Everything a person reads in the notebook's outputs: streams, markdown and plain text."""
    parts = []
    for out in outputs(notebook):
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/markdown", "") + data.get("text/plain", ""))
    return "".join(parts)


def error_of(colab: Colab, runtime: str) -> tuple[int, dict]:
    """(index among the code cells, error output) of the cell that failed in `runtime`'s executed notebook."""
    cells = colab.code_cells(runtime)
    failed = next(i for i, cell in enumerate(cells) if any(out.output_type == "error" for out in cell.outputs))
    return failed, next(out for out in cells[failed].outputs if out.output_type == "error")
