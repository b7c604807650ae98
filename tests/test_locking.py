"""fer_lib.locking with real processes: a live holder is named and refused, a killed one is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fer_lib import locking

REPO = Path(__file__).resolve().parents[1]
HOLD = "import sys, time\nfrom fer_lib import locking\nwith locking.exclusive(sys.argv[1], 'training'):\n    print('held', flush=True)\n    time.sleep(120)\n"


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
    assert not locking.is_held(folder)  # the dead holder's lease is stale
    with locking.exclusive(folder, "evaluation"):
        assert "evaluation" in locking.holder(folder)
    assert not (folder / locking.LOCK_NAME).exists() and not (folder / locking.HOLDER_NAME).exists()
