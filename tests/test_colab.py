"""The simulated Colab (tests/colab_sim.py): the notebooks as a person runs them in fresh Colab runtimes, by
papermill, with a Drive that persists from one runtime to the next and the code cloned from a local bare
Git repository holding this checkout as it is.

Run All of 00 to 05 in smoke mode, in order (02 takes the code from a copy on Drive instead of git),
with Drive unmounted in 03 after the copy of epoch 1 and back after epoch 2; then the ways the setup
cell stops (the placeholder REPO_URL, a wrong one) and a fixable error shown as one line.
`EXTRA_PARAMETERS` adds parameters per notebook (e.g. 01's DOWNLOAD against a local HTTP server).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError

from colab_sim import FAKE_COLAB, Colab, bare_repository, error_of, mark_installed, outputs, text_of
from fer_lib import notebook_tools
from fer_lib.training import checkpoint

NOTEBOOKS = [py.stem for py, _ in notebook_tools.pairs()]
EXTRA_PARAMETERS = {"03_training": {"SYNC_MINUTES": 0}}  # copy to Drive after every epoch: the drop is seen
DROP_MESSAGE = "Google Drive is not mounted (or disconnected): training goes on"


@pytest.fixture(scope="module")
def colab(synthetic_cache, tmp_path_factory) -> Colab:
    """A simulated Colab whose Drive holds the session's synthetic clips and their cache (saves regenerating)."""
    root = tmp_path_factory.mktemp("colab")
    simulated = Colab(root, bare_repository(root))
    shutil.copytree(synthetic_cache.clips.root, simulated.smoke / "ravdess")
    shutil.copytree(synthetic_cache.root, simulated.smoke / "cache" / "preprocessed")
    shutil.copytree(root / "checkout", simulated.fer / "code", ignore=shutil.ignore_patterns(".git"))  # a copy on Drive
    return simulated


@pytest.fixture(scope="module")
def run_all(colab) -> dict:
    """00 to 05 in order, in smoke mode, each in a fresh runtime: {name: executed notebook}."""
    executed = {}
    for name in NOTEBOOKS:
        form, drop = {}, None
        if name == "02_model_smoke_test":  # the code from a copy of the repository on Drive
            form = {"REPO_URL": str(colab.content(name) / "drive" / "MyDrive" / "fer" / "code")}
        if name == "03_training":  # Drive gone between epochs: unmounted when epoch 1 is done, back after epoch 2
            drop = {"watch": str(colab.content(name) / "fer_local" / "smoke" / "runs" / "smoke" / "metrics.json"),
                    "mountpoint": str(colab.content(name) / "drive"), "unmount_at": 1, "mount_at": 2}
        executed[name] = colab.run(name, {"SMOKE": True, **EXTRA_PARAMETERS.get(name, {})}, form, drop)
    return executed


# What each notebook must leave on Drive (in SMOKE mode's root, MyDrive/fer/smoke), beyond finishing without an error.
LEAVES = {
    "00_setup_mount": ["runs", "predictions"],
    "01_data_check": ["cache/preprocessed/report.json"],
    "02_model_smoke_test": [],
    "03_training": ["runs/smoke/checkpoints/best", "runs/smoke/curves.png"],
    "04_evaluation": ["runs/smoke/eval"],
    "05_predict_your_video": ["predictions/long_clip/timeline.png"],
    "06_cross_validation": ["cv/smoke/summary.json", "cv/smoke/results_readme.md", "cv/smoke/fold_0/layer_weights.png"],
}


def test_run_all_in_fresh_runtimes(run_all, colab):
    for name, notebook in run_all.items():
        assert all(cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code"), name
        for relative in LEAVES.get(name, []):
            assert (colab.smoke / relative).exists(), f"{name} did not write {relative}"
        assert (colab.content(name) / "fer_lib" / "fer_lib" / "__init__.py").is_file()  # the code it ran
        assert "Requirement already satisfied" in text_of(notebook), name  # pip's output is shown
        assert {"event": "enable_custom_widget_manager"} in colab.log(name), name  # tqdm bars render
        assert "<Figure size" not in text_of(notebook), name  # figures are images, not text
    assert not (colab.content("02_model_smoke_test") / "fer_lib" / ".git").exists()  # copied from Drive, not cloned
    assert (colab.content("01_data_check") / "fer_local" / "smoke" / "cache" / "preprocessed" / "manifest.json").is_file()
    assert sorted(path.name for path in colab.fer.iterdir()) == ["code", "smoke"]  # the user's folders: untouched


def test_training_survives_drive_going_away(run_all, colab):
    """03: Drive unmounted after epoch 1's checkpoint, back after epoch 2's: training went on, the message was
    shown once, nothing went into the unmounted folder (the fake refuses to mount over files), and the run
    on Drive is the whole run. (The last unmount is the notebook's flush at the end.)"""
    events = [event["event"] for event in colab.log("03_training") if event["event"] in ("mount", "unmount")]
    assert events == ["mount", "unmount", "mount", "unmount"]
    assert text_of(run_all["03_training"]).count(DROP_MESSAGE) == 1
    local = colab.content("03_training") / "fer_local" / "smoke" / "runs" / "smoke"
    drive = colab.smoke / "runs" / "smoke"
    assert (drive / "metrics.json").read_text() == (local / "metrics.json").read_text()
    assert len(json.loads((drive / "metrics.json").read_text())) == 2
    for name in ("last", "best"):
        assert checkpoint.load(drive / "checkpoints" / name).progress == \
            checkpoint.load(local / "checkpoints" / name).progress


def test_each_figure_once_as_an_image(run_all, colab):
    """04: the confusion matrix (clips and row percentages) appears once, as the PNG the evaluation wrote."""
    notebook = run_all["04_evaluation"]
    confusion = next((colab.smoke / "runs" / "smoke" / "eval").glob("*/av/confusion.png"))
    images = [out["data"]["image/png"] for out in outputs(notebook) if "image/png" in out.get("data", {})]
    assert images.count(base64.b64encode(confusion.read_bytes()).decode()) == 1
    assert "The original videos are not available" not in text_of(notebook)  # 04 passes the RAVDESS folder


def first_cell_error(colab: Colab, name: str, form: dict, runtime: str) -> dict:
    with pytest.raises(PapermillExecutionError):
        colab.run(name, {"SMOKE": True}, form, runtime=runtime)
    cells = colab.code_cells(runtime)
    assert not any(cell.get("execution_count") for cell in cells[1:])  # Run All stopped at the setup cell
    return next(out for out in cells[0].outputs if out.output_type == "error")


def test_setup_cell_stops_on_the_placeholder(colab):
    error = first_cell_error(colab, "00_setup_mount", {"REPO_URL": notebook_tools.REPO_URL}, "placeholder")
    assert error["ename"] == "SystemExit" and "Set REPO_URL in the form above" in error["evalue"]


def test_setup_cell_shows_gits_message_for_a_wrong_url(colab, tmp_path):
    error = first_cell_error(colab, "05_predict_your_video", {"REPO_URL": f"file://{tmp_path}/nothing.git"},
                             "wrong_url")
    assert error["ename"] == "SystemExit"
    assert "does not appear to be a git repository" in error["evalue"] and "Check REPO_URL" in error["evalue"]


def setup_cell(colab: Colab, runtime: str, repo_url: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The setup cell alone, with `repo_url` typed into its form, run as Colab runs it (google.colab imported
    first) in a fresh runtime `runtime` with its packages installed (`mark_installed`)."""
    content = colab.content(runtime)
    mark_installed(content)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(notebook_tools.SETUP_CELL)])
    notebook_tools.fill_form(notebook, {"REPO_URL": repo_url})
    env = {**os.environ, "PYTHONPATH": str(FAKE_COLAB), "FER_COLAB_CONTENT": str(content),
           "FAKE_COLAB_DRIVE": str(colab.drive), "FAKE_COLAB_LOG": str(content / "fake_colab.jsonl"), **(env or {})}
    return subprocess.run([sys.executable, "-c", "import google.colab\n" + notebook.cells[0].source
                           + "\nimport fer_lib; print(fer_lib.__file__)"], cwd=content,
                          env=env, capture_output=True, text=True, timeout=120)


def test_setup_cell_takes_a_git_repository_path_a_copy_or_fer_repo_url(colab, tmp_path):
    """REPO_URL: the path of a bare repository or of a clone is cloned (it used to be copied, then `No module
    named 'fer_lib.colab'`), a folder holding a copy is copied; FER_REPO_URL wins over the form (papermill)."""
    bare, clone = colab.repo_url.removeprefix("file://"), colab.root / "checkout"
    copy = colab.drive / "MyDrive" / "fer" / "code"
    for runtime, repo_url, env, cloned in (("bare_path", bare, {}, True), ("clone_path", str(clone), {}, True),
                                           ("copy_path", str(copy), {}, False),
                                           ("env_wins", notebook_tools.REPO_URL, {"FER_REPO_URL": bare}, True)):
        done = setup_cell(colab, runtime, repo_url, env)
        assert done.returncode == 0, (runtime, done.stderr)
        code = colab.content(runtime) / "fer_lib"
        assert done.stdout.splitlines()[-1] == str(code / "fer_lib" / "__init__.py"), runtime  # the code it got
        assert (code / ".git").is_dir() == cloned, runtime


def test_setup_cell_says_in_one_line_what_repo_url_takes(colab, tmp_path):
    (tmp_path / "empty").mkdir()
    for runtime, repo_url in (("relative", "fer/code"), ("no_copy", str(tmp_path / "empty"))):
        done = setup_cell(colab, runtime, repo_url)
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "REPO_URL = " in done.stderr and "Git" in done.stderr and "copy" in done.stderr
        assert not (colab.content(runtime) / "fer_lib").exists()


def test_a_fixable_error_is_one_line_and_stops_run_all(run_all, colab):
    """A FerError (here: no such run) shows as its one line, not a traceback, and the cells after it do not run."""
    with pytest.raises(PapermillExecutionError):
        smoke_root = colab.content("one_line") / "drive" / "MyDrive" / "fer" / "smoke"  # holds a cache, not this run
        colab.run("04_evaluation", {"ROOT": str(smoke_root), "RUN_NAME": "no_such_run"}, runtime="one_line")
    cells = colab.code_cells("one_line")
    failed, error = error_of(colab, "one_line")
    assert error["ename"] == "CheckpointError" and len(error["traceback"]) == 1
    assert "checkpoint not found" in error["traceback"][0] and "Traceback" not in error["traceback"][0]
    assert not any(cell.get("execution_count") for cell in cells[failed + 1:])


def test_training_plan_warns_without_a_gpu(capsys):
    """03 before training: the memory estimate against Colab's GPUs and the one it sees, or a warning without one."""
    import torch

    from fer_lib import show

    show.training_plan("lightweight", 8)
    out, err = capsys.readouterr()
    assert "Training memory of `lightweight` at batch 8" in out and "| A100 80 GB | 80 | yes |" in out
    if torch.cuda.is_available():
        assert "| this runtime: " in out
    else:
        assert "This runtime has no GPU" in err and "'lightweight' would be very slow" in err
    show.training_plan("tiny", 8)
    assert "no GPU" not in capsys.readouterr().err  # tiny is meant for a CPU
