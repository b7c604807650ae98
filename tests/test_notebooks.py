"""The notebooks: pairs in sync, clean for GitHub, GPU for Colab, form parameters papermill can set.

Running them is tests/test_colab.py's job: Run All of every notebook in a simulated Colab.
"""

import json

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


def test_each_notebook_starts_with_colab_setup_then_form_parameters():
    for _, ipynb_path in PAIRS:
        code = [c for c in jupytext.read(ipynb_path).cells if c.cell_type == "code"]
        assert code[0].source == notebook_tools.SETUP_CELL, ipynb_path.name
        assert "parameters" in code[1].metadata.get("tags", []), ipynb_path.name
        assert any(notebook_tools.FORM_FIELD.match(line) for line in code[1].source.splitlines())
        assert json.loads(ipynb_path.read_text())["metadata"]["accelerator"] == "GPU"


def test_check_catches_a_lost_parameters_tag_and_a_plain_assignment(tmp_path):
    """Colab cannot tag cells: a notebook saved without the tag would get papermill's values before the form."""
    py_path = tmp_path / PAIRS[0][0].name
    py_path.write_text(PAIRS[0][0].read_text())
    ipynb_path = notebook_tools.sync(py_path)
    notebook = nbformat.read(ipynb_path, as_version=4)
    parameters = [c for c in notebook.cells if c.cell_type == "code"][1]
    parameters.metadata["tags"] = []
    nbformat.write(notebook, ipynb_path)
    assert any("not tagged `parameters`" in p for p in notebook_tools.problems(py_path, ipynb_path))

    py_path.write_text(py_path.read_text().replace('SMOKE = False  #@param {type:"boolean"}', "SMOKE = False"))
    notebook_tools.sync(py_path)
    assert any("not Colab form fields" in p and "SMOKE = False" in p
               for p in notebook_tools.problems(py_path, py_path.with_suffix(".ipynb")))


@pytest.mark.parametrize("ipynb_path", [ipynb for _, ipynb in PAIRS], ids=[py.stem for py, _ in PAIRS])
def test_papermill_injects_right_after_the_form_cell(ipynb_path):
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = parameterize_notebook(load_notebook_node(str(ipynb_path)), {"SMOKE": True})
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    injected = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert "parameters" in tags[injected - 1] and "SMOKE = True" in notebook.cells[injected].source


def test_readme_badges_come_from_repo_url_and_the_notebooks():
    readme = notebook_tools.README.read_text()
    assert notebook_tools.readme_with_badges(readme) == readme  # `sync` wrote them; `check` fails otherwise
    github = notebook_tools.REPO_URL.removeprefix("https://github.com/")
    for _, ipynb_path in PAIRS:
        assert f"colab.research.google.com/github/{github}/blob/main/notebooks/{ipynb_path.name}" in readme
