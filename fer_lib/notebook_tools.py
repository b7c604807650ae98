"""The notebooks' plumbing: pair sync, checks that GitHub and Colab will accept them, headless runs.

    python -m fer_lib.notebook_tools sync     # after editing notebooks/*.py: rewrite the .ipynb and README's badges
    python -m fer_lib.notebook_tools check    # exit 1 when a pair drifted, an .ipynb is unclean or the badges differ

The `py:percent` file is the source a reviewer reads; the `.ipynb` is what Colab opens. Colab saves
only the `.ipynb`, so jupytext cannot keep them in sync there and `check` (run by the tests)
catches a pair that drifted. Committed notebooks carry no outputs and no `metadata.widgets`
(GitHub's renderer fails on it) and ask Colab for a GPU runtime.

Every notebook starts with the same setup cell, `SETUP_CELL` (each notebook must run alone in a fresh
runtime, so each carries it): `sync` writes it into every notebook, `check` fails on one that differs.
It runs before fer_lib can be imported, so it stands alone: in Colab it gets the code from its form
field `REPO_URL`, which takes a Git URL (cloned), the absolute path of a Git repository (cloned: its
committed state) or of a folder holding a copy of the repository (copied; a folder on Drive mounts
Drive first); anything else stops the cell with one line saying what it takes. The environment
variable `FER_REPO_URL` wins over the field: this cell runs before the parameters cell, so papermill's
`-p` cannot set it, and a scheduler or `FER_REPO_URL=... papermill ...` sets the source this way. The
cell puts the code on `sys.path` (no restart) and calls `fer_lib.colab.prepare_runtime`, where the
rest of the Colab logic lives. The field's default is `REPO_URL` below, the one place it is set:
`sync` writes it into every setup cell and into README's "Open in Colab" badges. While it is the
OWNER/REPO placeholder, the cell stops at once and says what to set; a failed clone shows git's own
message and what to do. Each stops Run All there (SystemExit fails the cell).

The second code cell holds the parameters, as Colab form fields (`NAME = value  #@param ...`). Colab
cannot tag a cell, so the papermill tag `parameters` must be in the committed .ipynb: without it
papermill would inject its values at the top, and the form cell would then set every value back.
`check` fails on a parameters cell without the tag or with a line that is not a form field.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import jupytext
import nbformat

from fer_lib import cli
from fer_lib.fileio import atomic_write_text

REPO_URL = "https://github.com/OWNER/REPO"  # this repository's Git URL; OWNER/REPO: placeholder until it is public
PLACEHOLDER = "OWNER/REPO"
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
BADGES_START, BADGES_END = "<!-- colab:start -->", "<!-- colab:end -->"
COLAB_METADATA = {
    "accelerator": "GPU",
    "colab": {"gpuType": "A100", "machine_shape": "hm", "provenance": []},
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}
FORM_FIELD = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*) = (?P<value>.*?)\s+#@param\b.*$")


SETUP_CELL = f"""\
#@title Setup: get the code
REPO_URL = "{REPO_URL}"  #@param {{type:"string"}}
#@markdown The Git URL of this repository, the path of a Git repository holding it, or a folder holding a copy of it
#@markdown (on Drive: `/content/drive/MyDrive/fer/code`). The environment variable `FER_REPO_URL` wins when set (papermill, schedulers).
import os, re, shutil, subprocess, sys
if "google.colab" in sys.modules:  # a fresh Colab runtime: get the code and import it from there, no restart
    CONTENT = os.environ.get("FER_COLAB_CONTENT", "/content")  # moved only by the tests' simulated Colab
    CODE = f"{{CONTENT}}/fer_lib"
    FIELD = "FER_REPO_URL" if os.environ.get("FER_REPO_URL") else "REPO_URL"  # papermill's -p cannot reach this cell
    REPO_URL = os.environ.get("FER_REPO_URL") or REPO_URL
    if "{PLACEHOLDER}" in REPO_URL:
        raise SystemExit("Set REPO_URL in the form above to this repository's Git URL (https://github.com/<owner>/"
                         "<name>) or to a folder on Drive holding a copy of it; then run this cell again.")
    if REPO_URL.startswith(f"{{CONTENT}}/drive/"):
        from google.colab import drive; drive.mount(f"{{CONTENT}}/drive")
    local = os.path.isabs(REPO_URL)
    if local and not (os.path.exists(f"{{REPO_URL}}/.git") or os.path.isfile(f"{{REPO_URL}}/HEAD")):  # not a Git repository
        if not os.path.isfile(f"{{REPO_URL}}/fer_lib/__init__.py"):
            raise SystemExit(f"{{FIELD}} = {{REPO_URL}} is neither a Git repository nor a folder holding a copy of this "
                             "repository (with fer_lib/ in it): copy the repository there, or set its Git URL.")
        if os.path.realpath(REPO_URL) != os.path.realpath(CODE):
            shutil.rmtree(CODE, ignore_errors=True)
            shutil.copytree(REPO_URL, CODE)
    elif local or re.match(r"(https?|ssh|git|file)://|[\\w.-]+@[\\w.-]+:", REPO_URL):  # clone once, update on a rerun
        git = ["git", "-C", CODE, "pull", "--ff-only"]
        if not os.path.isdir(f"{{CODE}}/.git"):
            shutil.rmtree(CODE, ignore_errors=True)  # a copy made from another source
            git = ["git", "clone", "--depth", "1", f"file://{{REPO_URL}}" if local else REPO_URL, CODE]
        done = subprocess.run(git, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{{' '.join(git)}} failed:\\n{{done.stderr.strip()}}\\nCheck {{FIELD}} (a private repository"
                             " needs access), or copy the repository to Drive and set REPO_URL to that folder.")
    else:
        raise SystemExit(f"{{FIELD}} = {{REPO_URL!r}} is not what it takes: a Git URL (https://github.com/<owner>/<name>), "
                         "the absolute path of a Git repository, or of a folder holding a copy of this repository.")
    sys.path.insert(0, CODE)
    from fer_lib.colab import prepare_runtime; prepare_runtime()"""


def pairs(directory: Path = NOTEBOOK_DIR) -> list[tuple[Path, Path]]:
    return [(py, py.with_suffix(".ipynb")) for py in sorted(directory.glob("[0-9][0-9]_*.py"))]


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _write_setup_cell(py_path: Path) -> None:
    """Replace the body of the first code cell (`# %%`) of a py:percent file with SETUP_CELL (and a blank line)."""
    lines = py_path.read_text().splitlines()
    start = lines.index("# %%") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("# %%")), len(lines))
    atomic_write_text(py_path, "\n".join(lines[:start] + SETUP_CELL.splitlines() + [""] + lines[end:]) + "\n")


def sync(py_path: Path) -> Path:
    """Put SETUP_CELL into the py:percent notebook, then write its .ipynb: clean cells, Colab GPU metadata."""
    if _code_cells(jupytext.read(py_path))[0].source != SETUP_CELL:
        _write_setup_cell(py_path)
    notebook = jupytext.read(py_path)
    notebook.metadata = dict(COLAB_METADATA)
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number:02d}"  # stable: a re-sync changes no line of an unchanged cell
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
    ipynb_path = py_path.with_suffix(".ipynb")
    text = nbformat.writes(notebook)
    atomic_write_text(ipynb_path, text if text.endswith("\n") else text + "\n")
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
    if any(cell.get("outputs") or cell.get("execution_count") for cell in _code_cells(ipynb)):
        found.append(f"{ipynb_path.name}: has outputs")
    if "widgets" in ipynb.metadata:
        found.append(f"{ipynb_path.name}: has metadata.widgets (GitHub cannot render it)")
    if ipynb.metadata.get("accelerator") != "GPU":
        found.append(f"{ipynb_path.name}: does not ask Colab for a GPU")
    code = _code_cells(ipynb)
    if code[0].source != SETUP_CELL:
        found.append(f"{ipynb_path.name}: the first code cell is not notebook_tools.SETUP_CELL (run sync)")
    if len(code) < 2 or "parameters" not in code[1].metadata.get("tags", []):
        found.append(f"{ipynb_path.name}: the second code cell is not tagged `parameters` (papermill would inject "
                     "before it, and the form would set every value back)")
    elif not_fields := [line for line in code[1].source.splitlines()
                        if line.strip() and not line.startswith("#") and not FORM_FIELD.match(line)]:
        found.append(f"{ipynb_path.name}: parameter lines that are not Colab form fields (`#@param`): {not_fields}")
    return found


def fill_form(notebook, values: dict) -> None:
    """Set Colab form fields (`NAME = value  #@param ...`) of `notebook` in place, as a person does in Colab."""
    missing = set(values)
    for cell in _code_cells(notebook):
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            field = FORM_FIELD.match(line)
            if field and field["name"] in values:
                lines[i] = line.replace(f"= {field['value']}", f"= {values[field['name']]!r}", 1)
                missing.discard(field["name"])
        cell.source = "\n".join(lines)
    if missing:
        raise KeyError(f"no form field {sorted(missing)} in the notebook")


def execute(ipynb_path: Path, output_path: Path, parameters: dict, cwd: Optional[Path] = None, timeout: int = 1200,
            form: Optional[dict] = None):
    """Run a notebook headless with papermill: `form` values typed into its form fields first (e.g. the
    setup cell's REPO_URL), `parameters` injected after the `parameters` cell."""
    import papermill

    notebook = nbformat.read(ipynb_path, as_version=4)
    fill_form(notebook, form or {})
    output_path.parent.mkdir(parents=True, exist_ok=True)
    return papermill.execute_notebook(
        notebook, str(output_path), parameters=parameters, cwd=str(cwd or ipynb_path.parent),
        kernel_name="python3", progress_bar=False, execution_timeout=timeout,
    )


def badges(repo_url: str = REPO_URL) -> str:
    """README's table of notebooks, each with its "Open in Colab" badge (for a GitHub URL) and its title."""
    github = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", repo_url)
    rows = ["| notebook | what it does |", "|---|---|"]
    for py_path, ipynb_path in pairs():
        title = next(cell.source for cell in jupytext.read(py_path).cells if cell.cell_type == "markdown")
        what = title.splitlines()[0].lstrip("# ").split("·", 1)[-1].strip()
        link = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                f"(https://colab.research.google.com/github/{github[1]}/blob/main/notebooks/{ipynb_path.name}) "
                if github else "")
        rows.append(f"| {link}`{py_path.stem}` | {what} |")
    return "\n".join(rows)


def readme_with_badges(text: str) -> str:
    head, rest = text.split(BADGES_START, 1)
    return f"{head}{BADGES_START}\n{badges()}\n{BADGES_END}{rest.split(BADGES_END, 1)[1]}"


@cli.command()
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.notebook_tools")
    parser.add_argument("command", choices=("sync", "check"))
    args = parser.parse_args(argv)
    if args.command == "sync":
        for py_path, _ in pairs():
            print(f"wrote {sync(py_path)}")
        atomic_write_text(README, readme_with_badges(README.read_text()))
        print(f"wrote the Open in Colab badges into {README}")
        return 0
    found = [p for py_path, ipynb_path in pairs() for p in problems(py_path, ipynb_path)]
    if readme_with_badges(README.read_text()) != README.read_text():
        found.append(f"{README.name}: the Open in Colab badges differ from the notebooks or REPO_URL (run sync)")
    print("\n".join(found) or "notebooks: all pairs in sync and clean, README's badges up to date")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
