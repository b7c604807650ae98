"""fer_lib.locking with real processes: a live holder is named and refused, a killed one is taken over,
on this host at once and from another host (a process in its own UTS namespace, as a new Colab runtime
is another machine) on the first try once its lease is older than its duration."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer_lib import locking

REPO = Path(__file__).resolve().parents[1]
HOLD = "import sys, time\nfrom fer_lib import locking\nwith locking.exclusive(sys.argv[1], 'training'):\n    print('held', flush=True)\n    time.sleep(120)\n"
LEASE = 3.0  # seconds, the holder's lease in the two-host test


def other_host(command: list[str], host: str = "other") -> list[str]:
    """`command` run with its own host name (a UTS namespace: `unshare -u`, as root)."""
    return ["unshare", "-u", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *command]


def can_rename_host() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        other_host(["hostname"]), capture_output=True, text=True).stdout.strip() == "other"


def test_a_live_holder_is_refused_and_a_killed_one_taken_over(tmp_path):
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert locking.is_held(folder)
        with pytest.raises(locking.FolderInUseError) as error:
            with locking.exclusive(folder, "training"):
                pass
        message = str(error.value)
        assert f"pid {proc.pid}" in message and "training" in message and "\n" not in message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not locking.is_held(folder)  # the dead holder's lease is stale: its process is gone on this host
    with locking.exclusive(folder, "evaluation"):
        assert "evaluation" in locking.holder(folder)
    assert not (folder / locking.LOCK_NAME).exists()


@pytest.mark.skipif(not can_rename_host(), reason="needs `unshare -u` (root) for a second host name")
def test_a_holder_on_another_host_is_refused_while_it_refreshes_and_taken_over_once_dead(tmp_path):
    """Issue 21.1: before, a dead holder on another host was never taken over by `acquire(timeout=0)`."""
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FER_LEASE_SECONDS": str(LEASE)}
    proc = subprocess.Popen(other_host([sys.executable, "-c", HOLD, str(folder)]), stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        time.sleep(2 * LEASE)  # alive and refreshing: still refused after more than a lease
        with pytest.raises(locking.FolderInUseError) as error:
            with locking.exclusive(folder, "training"):
                pass
        message = str(error.value)
        assert "on host other" in message and "\n" not in message
        assert "taken over from" in message and "lease refreshed" in message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = time.time()
    refreshed = json.loads((folder / locking.LOCK_NAME).read_text())["refreshed"]
    with pytest.raises(locking.FolderInUseError):  # the lease is still young: the holder may only be slow
        with locking.exclusive(folder, "training"):
            pass
    time.sleep(max(0.0, refreshed + LEASE + 0.2 - time.time()))
    with locking.exclusive(folder, "training"):  # the first try once the lease is older than its duration
        taken = time.time()
        assert "on host" in locking.holder(folder) and f"pid {os.getpid()}" in locking.holder(folder)
    assert taken - killed <= LEASE + 1.0
    assert not (folder / locking.LOCK_NAME).exists() and not list(folder.glob(".fer.lock*"))
