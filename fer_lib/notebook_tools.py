"""The notebooks' plumbing: pair sync, checks that GitHub and Colab will accept them, headless runs.

    python -m fer_lib.notebook_tools sync     # after editing notebooks/*.py: rewrite the .ipynb
    python -m fer_lib.notebook_tools check    # exit 1 when a pair drifted or an .ipynb is unclean

The `py:percent` file is the source a reviewer reads; the `.ipynb` is what Colab opens. Colab saves
only the `.ipynb`, so jupytext cannot keep them in sync there and `check` (run by the tests)
catches a pair that drifted. Committed notebooks carry no outputs and no `metadata.widgets`
(GitHub's renderer fails on it) and ask Colab for a GPU runtime.

Every notebook starts with the same setup cell, `SETUP_CELL` (each notebook must run alone in a fresh
runtime, so each carries it): `sync` writes it into every notebook, `check` fails on one that differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

from fer_lib import cli

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
COLAB_METADATA = {
    "accelerator": "GPU",
    "colab": {"gpuType": "A100", "machine_shape": "hm", "provenance": []},
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


SETUP_CELL = """\
import subprocess, sys
if "google.colab" in sys.modules:  # fresh Colab runtime: fetch the code, importable without a restart
    subprocess.run("git -C /content/fer_lib pull -q || git clone -q --depth 1 https://github.com/OWNER/REPO /content/fer_lib", shell=True, check=True)  # OWNER/REPO: placeholder
    sys.path.insert(0, "/content/fer_lib")
    from fer_lib.colab import install_requirements; install_requirements()"""


def pairs(directory: Path = NOTEBOOK_DIR) -> list[tuple[Path, Path]]:
    return [(py, py.with_suffix(".ipynb")) for py in sorted(directory.glob("[0-9][0-9]_*.py"))]


def _setup_cell(notebook):
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def _write_setup_cell(py_path: Path) -> None:
    """Replace the body of the first code cell (`# %%`) of a py:percent file with SETUP_CELL."""
    lines = py_path.read_text().splitlines()
    start = lines.index("# %%") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("# %%")), len(lines))
    while end > start and not lines[end - 1].strip():
        end -= 1  # keep the blank line(s) between cells
    py_path.write_text("\n".join(lines[:start] + SETUP_CELL.splitlines() + lines[end:]) + "\n")


def sync(py_path: Path) -> Path:
    """Put SETUP_CELL into the py:percent notebook, then write its .ipynb: clean cells, Colab GPU metadata."""
    if _setup_cell(jupytext.read(py_path)).source != SETUP_CELL:
        _write_setup_cell(py_path)
    notebook = jupytext.read(py_path)
    notebook.metadata = dict(COLAB_METADATA)
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number:02d}"  # stable: a re-sync changes no line of an unchanged cell
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
    ipynb_path = py_path.with_suffix(".ipynb")
    nbformat.write(notebook, ipynb_path)
    return ipynb_path


def cell_sources(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def problems(py_path: Path, ipynb_path: Path) -> list[str]:
    """Why this pair would mislead a reviewer or break on GitHub/Colab; empty when it is fine."""
    if not ipynb_path.exists():
        return [f"{ipynb_path.name}: missing (run `python -m fer_lib.notebook_tools sync`)"]
    found = []
    ipynb = nbformat.read(ipynb_path, as_version=4)
    if cell_sources(jupytext.read(py_path)) != cell_sources(jupytext.read(ipynb_path)):
        found.append(f"{ipynb_path.name} and {py_path.name} disagree in cell sources")
    if any(cell.get("outputs") or cell.get("execution_count") for cell in ipynb.cells if cell.cell_type == "code"):
        found.append(f"{ipynb_path.name}: has outputs")
    if "widgets" in ipynb.metadata:
        found.append(f"{ipynb_path.name}: has metadata.widgets (GitHub cannot render it)")
    if ipynb.metadata.get("accelerator") != "GPU":
        found.append(f"{ipynb_path.name}: does not ask Colab for a GPU")
    if not any("parameters" in cell.metadata.get("tags", []) for cell in ipynb.cells):
        found.append(f"{ipynb_path.name}: no cell tagged `parameters`")
    if _setup_cell(ipynb).source != SETUP_CELL:
        found.append(f"{ipynb_path.name}: the first code cell is not notebook_tools.SETUP_CELL (run sync)")
    return found


def execute(ipynb_path: Path, output_path: Path, parameters: dict, cwd: Path | None = None, timeout: int = 1200):
    """Run a notebook headless with papermill (parameters injected after the `parameters` cell)."""
    import papermill

    output_path.parent.mkdir(parents=True, exist_ok=True)
    return papermill.execute_notebook(
        str(ipynb_path), str(output_path), parameters=parameters, cwd=str(cwd or ipynb_path.parent),
        kernel_name="python3", progress_bar=False, execution_timeout=timeout,
    )


@cli.command()
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.notebook_tools")
    parser.add_argument("command", choices=("sync", "check"))
    args = parser.parse_args(argv)
    if args.command == "sync":
        for py_path, _ in pairs():
            print(f"wrote {sync(py_path)}")
        return 0
    found = [p for py_path, ipynb_path in pairs() for p in problems(py_path, ipynb_path)]
    print("\n".join(found) or "notebooks: all pairs in sync and clean")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
