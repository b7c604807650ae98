"""The notebooks: pairs in sync, clean for GitHub, GPU for Colab, and every one runs headless."""

import json
import shutil

import jupytext
import nbformat
import pytest

from fer_lib import notebook_tools

PAIRS = notebook_tools.pairs()
EXPECTED = ["00_setup_mount", "01_data_check", "02_model_smoke_test", "03_training", "04_evaluation",
            "05_predict_your_video", "06_cross_validation"]


def test_every_numbered_notebook_exists_as_a_pair():
    present = [py.stem for py, _ in PAIRS]
    assert [name for name in EXPECTED if name in present] == present[: len(present)]
    assert "00_setup_mount" in present


@pytest.mark.parametrize("py_path,ipynb_path", PAIRS, ids=[py.stem for py, _ in PAIRS])
def test_pair_is_in_sync_and_clean(py_path, ipynb_path):
    assert notebook_tools.problems(py_path, ipynb_path) == []


def test_check_catches_a_drifted_pair_outputs_and_widgets(tmp_path):
    py_path, ipynb_path = PAIRS[0]
    py_copy = tmp_path / py_path.name
    py_copy.write_text(py_path.read_text())
    notebook_tools.sync(py_copy)
    ipynb_copy = py_copy.with_suffix(".ipynb")
    assert notebook_tools.problems(py_copy, ipynb_copy) == []

    notebook = nbformat.read(ipynb_copy, as_version=4)  # what Colab does: edit and save the .ipynb only
    code = next(c for c in notebook.cells if c.cell_type == "code")
    code.source += "\nprint('edited in Colab')"
    code.outputs = [nbformat.v4.new_output("stream", text="edited in Colab\n")]
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nbformat.write(notebook, ipynb_copy)
    found = " | ".join(notebook_tools.problems(py_copy, ipynb_copy))
    assert "disagree in cell sources" in found and "has outputs" in found and "metadata.widgets" in found


def test_each_notebook_starts_with_colab_setup_then_parameters():
    for _, ipynb_path in PAIRS:
        code = [c for c in jupytext.read(ipynb_path).cells if c.cell_type == "code"]
        assert "google.colab" in code[0].source, ipynb_path.name
        assert "parameters" in code[1].metadata.get("tags", []), ipynb_path.name
        assert json.loads(ipynb_path.read_text())["metadata"]["accelerator"] == "GPU"


@pytest.fixture(scope="module")
def smoke_root(synthetic_cache, tmp_path_factory):
    """A Drive-like root holding the session's synthetic clips and their cache (saves regenerating)."""
    root = tmp_path_factory.mktemp("notebook_root")
    shutil.copytree(synthetic_cache.clips.root, root / "ravdess")
    shutil.copytree(synthetic_cache.root, root / "cache" / "preprocessed")
    return root


# What each notebook must leave behind in the root, beyond finishing without an error.
LEAVES = {
    "00_setup_mount": ["runs", "predictions"],
    "01_data_check": ["cache/preprocessed/report.json", "local/cache/preprocessed/manifest.json"],
    "02_model_smoke_test": [],
    "03_training": ["runs/smoke/checkpoints/best", "runs/smoke/curves.png"],
    "04_evaluation": ["runs/smoke/eval"],
    "05_predict_your_video": ["predictions/long_clip/timeline.png"],
    "06_cross_validation": ["cv/smoke/summary.json", "cv/smoke/results_readme.md", "cv/smoke/fold_0/layer_weights.png"],
}


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_headless_in_smoke_mode(name, smoke_root, tmp_path):
    executed = notebook_tools.execute(notebook_tools.NOTEBOOK_DIR / f"{name}.ipynb", tmp_path / f"{name}.ipynb",
                                      {"ROOT": str(smoke_root), "SMOKE": True}, cwd=tmp_path)
    assert all(cell.get("execution_count") for cell in executed.cells if cell.cell_type == "code")
    for relative in LEAVES[name]:
        assert (smoke_root / relative).exists(), f"{name} did not write {relative}"
