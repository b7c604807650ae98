"""The notebooks: pairs in sync, clean for GitHub, GPU for Colab, and every one runs headless."""

import json

import jupytext
import nbformat
import pytest

from fer_lib import notebook_tools

PAIRS = notebook_tools.pairs()
EXPECTED = ["00_setup_mount", "01_data_check", "02_model_smoke_test", "03_training", "04_evaluation",
            "05_predict_your_video"]


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
