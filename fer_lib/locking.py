"""One process at a time in a folder: a run folder while it trains, a cache while it is built.

    with locking.exclusive(run_dir, "training"):
        ...                                    # a second process here stops at once: FolderInUseError

Two processes writing the same run folder or cache would overwrite each other's checkpoints,
metrics or entries and both exit 0. So the folder holds a lease file, `.fer.lock` (filelock's
`SoftFileLease`: a marker file created exclusively, which works on Google Drive as on local disk),
and `.fer.lock.json`, who holds it and since when, for the message.

A holder that died is detected and its lease taken over: on the same machine at once (its process
id is gone), from another machine (a Colab runtime that disconnected) once it has not refreshed the
lease for LEASE_SECONDS; the holder refreshes it from a background thread while it runs.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import SoftFileLease, Timeout

from fer_lib.errors import FerError
from fer_lib.fileio import atomic_write_text

LOCK_NAME = ".fer.lock"
HOLDER_NAME = ".fer.lock.json"
LEASE_SECONDS = 120.0
HOLDER_WAIT_SECONDS = 5.0  # a holder writes who it is milliseconds after taking the lease (more on a busy machine)


class FolderInUseError(FerError):
    """Another process is working in this folder; the message names it."""


@contextmanager
def exclusive(folder: str | Path, purpose: str) -> Iterator[Path]:
    """Hold `folder` (created if missing) for `purpose` ("training", "preprocessing" ...) while the block runs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lease = SoftFileLease(folder / LOCK_NAME, lease_duration=LEASE_SECONDS)
    try:
        lease.acquire(timeout=0)
    except Timeout:
        raise FolderInUseError(f"{folder} is in use by {holder(folder, wait=HOLDER_WAIT_SECONDS)}; wait until it "
                               "finishes (or stop it), then run the command again") from None
    try:
        atomic_write_text(folder / HOLDER_NAME, json.dumps({
            "purpose": purpose, "pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        yield folder
    finally:
        (folder / HOLDER_NAME).unlink(missing_ok=True)
        lease.release()


def holder(folder: str | Path, wait: float = 0.0) -> str:
    """'training (pid 123 on host vm, since 2026-12-03 10:00:00)', or what the lease file says.

    `wait`: seconds to give a holder that took the lease a moment ago to write who it is (the lease
    file and HOLDER_NAME are written just after the lease is taken: two processes started together
    would otherwise see neither)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            info = json.loads((Path(folder) / HOLDER_NAME).read_text())
            return f"{info['purpose']} (pid {info['pid']} on host {info['host']}, since {info['since']})"
        except (OSError, ValueError, KeyError):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
    try:
        fields = dict(line.split("=", 1) for line in (Path(folder) / LOCK_NAME).read_text().splitlines() if "=" in line)
        return f"another process (pid {fields.get('pid', '?')} on host {fields.get('host', '?')})"
    except OSError:
        return "another process"


def is_held(folder: str | Path) -> bool:
    """True while a live process holds `folder` (a dead holder's lease does not count)."""
    lease = SoftFileLease(Path(folder) / LOCK_NAME, lease_duration=LEASE_SECONDS)
    try:
        lease.acquire(timeout=0)
    except Timeout:
        return True
    lease.release()
    return False
