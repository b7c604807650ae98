"""Every way a Colab runtime ends, as a person meets it: one table, one test per row, each row from fresh
runtimes of the simulated Colab (tests/colab_sim.py) with a Drive of its own.

`LIFECYCLE` maps an event to what the person sees, what is lost at most (README, "Colab lifecycle",
shows the same table) and the check that plays the event and asserts both. Drive is a real mount where
this machine allows it (a tmpfs bind-mounted at /content/drive, so `os.path.ismount` is the real one),
the symlink fake otherwise; a runtime "on another host" is a kernel in a UTS namespace of its own.
Training is notebook 03 in SMOKE mode (tiny preset, 2 epochs), copied to Drive after every checkpoint
(SYNC_MINUTES 0), with a lease of LEASE seconds (FER_LEASE_SECONDS) instead of LEASE_SECONDS. The
runtimes have installed requirements-colab.txt already (tests/test_colab.py runs the install).

To add a row: a check function `(colab, request) -> None` (request: for more fixtures) and its entry.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from papermill.exceptions import PapermillExecutionError

from colab_sim import Colab, bare_repository, can_mount, error_of, text_of
from fer_lib import locking
from fer_lib.evaluate import main as evaluate_main
from fer_lib.predict import main as predict_main
from fer_lib.training import checkpoint

LEASE = 4.0  # seconds: the lease of the runtimes here (LEASE_SECONDS is 120)
TRAINING = {"SMOKE": True, "SYNC_MINUTES": 0}
DROP_MESSAGE = "Google Drive is not mounted (or disconnected): training goes on"


@dataclass
class Row:
    sees: str  # what the person sees
    lost: str  # what is lost at most
    check: Callable[[Colab, pytest.FixtureRequest], None]


# --------------------------------------------------------------------------------------------
# Where things are in a runtime and on Drive
# --------------------------------------------------------------------------------------------


def drive_run(colab: Colab) -> Path:
    return colab.smoke / "runs" / "smoke"


def local_run(colab: Colab, runtime: str) -> Path:
    return colab.content(runtime) / "fer_local" / "smoke" / "runs" / "smoke"


def epochs_in(run: Path) -> int:
    return len(json.loads((run / "metrics.json").read_text()))


def sync_state(colab: Colab) -> dict:
    return json.loads((drive_run(colab) / "sync_state.json").read_text())


def train(colab: Colab, runtime: str, again: bool = False, **options):
    return colab.run("03_training", TRAINING, runtime=runtime, again=again,
                     env={"FER_LEASE_SECONDS": str(LEASE), **options.pop("env", {})}, **options)


def assert_whole_run_on_drive(colab: Colab, runtime: str) -> None:
    assert epochs_in(drive_run(colab)) == 2 and sync_state(colab)["state"] == "finished"
    assert checkpoint.read_progress(drive_run(colab) / "checkpoints" / "last")["epoch"] == 2
    for name in ("last", "best"):  # (a runtime that resumed from Drive has no `best` unless it improved)
        local = checkpoint.read_progress(local_run(colab, runtime) / "checkpoints" / name)
        assert local in (None, checkpoint.read_progress(drive_run(colab) / "checkpoints" / name)), name


def one_line_error(colab: Colab, runtime: str, name: str) -> str:
    """The error that stopped Run All in `runtime`: one line, no traceback, no cell after it run."""
    failed, error = error_of(colab, runtime)
    assert error["ename"] == name and len(error["traceback"]) == 1 and "Traceback" not in error["traceback"][0]
    assert not any(cell.get("execution_count") for cell in colab.code_cells(runtime)[failed + 1:])
    return error["evalue"]


# --------------------------------------------------------------------------------------------
# The rows
# --------------------------------------------------------------------------------------------


def kernel_killed_then_new_runtime_on_another_host(colab: Colab, request) -> None:
    """SIGKILL to the kernel right after the copy of epoch 1; 03 in a runtime on host runtime-b takes the
    lease over on its first try and continues from Drive's epoch 1."""
    kill = {"watch": str(drive_run(colab) / "metrics.json"), "rows": 1, "signal": "SIGKILL"}
    with pytest.raises((PapermillExecutionError, RuntimeError)):  # the kernel died (nbclient's DeadKernelError)
        train(colab, "lost", env={"FAKE_COLAB_SIGNAL": json.dumps(kill)})
    killed_at = next(e["time"] for e in colab.log("lost") if e["event"] == "signal")
    lease = json.loads((drive_run(colab) / locking.LOCK_NAME).read_text())  # left behind by the dead holder
    assert lease["host"] != "runtime-b" and epochs_in(drive_run(colab)) == 1

    taken_over = []

    def watch_lease():  # when runtime-b holds the run folder
        while not taken_over and time.time() < killed_at + 600:
            try:
                if json.loads((drive_run(colab) / locking.LOCK_NAME).read_text())["host"] == "runtime-b":
                    taken_over.append(time.time())
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_lease, daemon=True)
    watcher.start()
    notebook = train(colab, "runtime_b", host="runtime-b")
    watcher.join(timeout=5)
    assert "resuming" in text_of(notebook) and "at epoch 2" in text_of(notebook)  # nothing trained twice
    assert_whole_run_on_drive(colab, "runtime_b")
    delay = taken_over[0] - killed_at
    print(f"lease taken over {delay:.1f} s after the kernel was killed (lease {LEASE:g} s; runtime-b's start included)")
    assert delay <= LEASE + 60  # the start of a runtime (kernel, clone, imports) on a busy 2-core machine


def stop_cell_then_rerun(colab: Colab, request) -> None:
    """SIGINT (the stop button) while epoch 1 is copied to Drive: the step and the copy finish, one line;
    running 03 again continues."""
    stop = {"watch": str(local_run(colab, "stopped") / "metrics.json"), "rows": 1, "signal": "SIGINT"}
    with pytest.raises(PapermillExecutionError):
        train(colab, "stopped", env={"FAKE_COLAB_SIGNAL": json.dumps(stop)})
    line = one_line_error(colab, "stopped", "Stopped")
    assert line.startswith("stopped at epoch 1 ") and "Drive holds epoch 1 " in line
    assert line.endswith("run 03 again (or the same command) to continue")
    assert sync_state(colab)["state"] == "stopped" and epochs_in(drive_run(colab)) == 1
    assert not (drive_run(colab) / locking.LOCK_NAME).exists()  # released: the rerun needs no wait

    notebook = train(colab, "stopped", again=True)
    assert "resuming" in text_of(notebook)
    assert_whole_run_on_drive(colab, "stopped")


def drive_dropped_and_never_back(colab: Colab, request) -> None:
    """Drive unmounted before the copy of epoch 2 and never remounted: 03 ends with one line (Run All stops);
    04 in a new runtime evaluates what Drive holds and says so; evaluate and predict refuse it without
    --allow_incomplete."""
    drop = {"watch": str(local_run(colab, "dropped") / "metrics.json"),
            "mountpoint": str(colab.content("dropped") / "drive"), "unmount_at": 2, "mount_at": 99}
    with pytest.raises(PapermillExecutionError):
        train(colab, "dropped", drop=drop)
    line = one_line_error(colab, "dropped", "DriveBehindError")
    assert "training reached epoch 2 " in line and "on Drive holds epoch 1 " in line and "Remount" in line
    assert sync_state(colab)["state"] == "training"

    smoke_root = colab.content("evaluation") / "drive" / "MyDrive" / "fer" / "smoke"
    notebook = colab.run("04_evaluation", {"ROOT": str(smoke_root), "RUN_NAME": "smoke"}, runtime="evaluation")
    assert "run smoke did not finish" in text_of(notebook)
    report = next((drive_run(colab) / "eval").glob("*/av/report.md")).read_text()
    assert "run_state: run smoke did not finish" in report and "incomplete run" in report

    capsys = request.getfixturevalue("capsys")
    capsys.readouterr()
    args = ["--checkpoint", str(drive_run(colab)), "--cache_dir", str(colab.smoke / "cache" / "preprocessed")]
    video = next((colab.smoke / "ravdess").rglob("*.mp4"))
    for main, argv in ((evaluate_main, args), (predict_main, [str(video), "--checkpoint", str(drive_run(colab))])):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "did not finish" in err[0] and "--allow_incomplete" in err[0], err


def drive_dropped_and_back(colab: Colab, request) -> None:
    """Drive unmounted at the copy of epoch 1, back at the copy of epoch 2: said once, nothing lost."""
    drop = {"watch": str(local_run(colab, "back") / "metrics.json"),
            "mountpoint": str(colab.content("back") / "drive"), "unmount_at": 1, "mount_at": 2}
    notebook = train(colab, "back", drop=drop)
    assert text_of(notebook).count(DROP_MESSAGE) == 1
    assert_whole_run_on_drive(colab, "back")


LIFECYCLE = {
    "kernel killed during 03, then 03 in a new runtime (another host)": Row(
        sees="03 resumes from the last copy on Drive: the dead runtime's lease is taken over on the first try once "
             "it is older than 2 minutes (before: a refusal naming the dead process); sooner, one line says when",
        lost="the training since the last copy to Drive: at most SYNC_MINUTES",
        check=kernel_killed_then_new_runtime_on_another_host),
    "stop button during 03, then 03 again": Row(
        sees="the step under way finishes, a checkpoint of it is written and copied to Drive, one line: `stopped at "
             "epoch E (step S); Drive holds epoch D; run 03 again (or the same command) to continue`; 03 again resumes",
        lost="nothing (a second stop stops at once: the step under way)",
        check=stop_cell_then_rerun),
    "Drive dropped during 03 and never back": Row(
        sees="a warning every epoch; at the end 03 fails with one line (what Drive holds against what training "
             "reached, how to remount) and Run All stops; 04 evaluates what Drive holds and says so on screen and in "
             "the report; the commands refuse it without --allow_incomplete",
        lost="everything since Drive went, unless Drive is remounted in that runtime and 03 run again",
        check=drive_dropped_and_never_back),
    "Drive dropped during 03 and back": Row(
        sees="one warning; training goes on and the run is copied at the first checkpoint after Drive is back",
        lost="nothing",
        check=drive_dropped_and_back),
}


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory) -> str:
    return bare_repository(tmp_path_factory.mktemp("lifecycle_repo"))


@pytest.fixture
def colab(repo_url, synthetic_cache, tmp_path):
    """Fresh runtimes and a fresh Drive holding the session's synthetic clips and their cache."""
    simulated = Colab(tmp_path, repo_url, real_mounts=can_mount(), preinstalled=True)
    try:
        shutil.copytree(synthetic_cache.clips.root, simulated.smoke / "ravdess")
        shutil.copytree(synthetic_cache.root, simulated.smoke / "cache" / "preprocessed")
        yield simulated
    finally:
        simulated.close()


@pytest.mark.parametrize("event", list(LIFECYCLE))
def test_lifecycle(event, colab, request):
    LIFECYCLE[event].check(colab, request)


def test_readme_shows_the_lifecycle_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for event, row in LIFECYCLE.items():
        assert f"| {event} | {row.sees} | {row.lost} |" in readme, event
