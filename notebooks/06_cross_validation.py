# %% [markdown]
# # 06 · Cross-validation: the 6-fold results table
#
# The number to compare with the literature. The best published audio-visual RAVDESS result (HiCMAE,
# WAR 87.99 / UAR 87.96) holds out 4 consecutive actors per fold: 1-4, 5-8, …, 21-24. This notebook
# trains and evaluates the **reference recipe** on exactly those 6 folds and writes a table of WAR, UAR
# and macro-F1 per fold, with mean and standard deviation, for audio only, visual only and both.
# Unlike HiCMAE, each fold validates (early stopping) on 4 of its *training* actors, never on its test
# actors.
#
# The reference recipe (`fer_lib.config.get_recipe("reference")`): frozen SigLIP2 and Parakeet, each
# read through a learnable weighted sum of its layers (their outputs cached once on the runtime's disk,
# masked differently every epoch), LFM2-700M trained through LoRA adapters, modality dropout 0.2.
# Checkpoints hold the adapters and heads only (under 0.5 GB).
#
# Six trainings take a while: **run this notebook again after a disconnect** — finished folds are
# skipped and the current one resumes from its last checkpoint.

# %%
#@title Setup: get the code
REPO_URL = "https://github.com/OWNER/REPO"  #@param {type:"string"}
#@markdown The Git URL of this repository, the path of a Git repository holding it, or a folder holding a copy of it
#@markdown (on Drive: `/content/drive/MyDrive/fer/code`). The environment variable `FER_REPO_URL` wins when set (papermill, schedulers).
import os, re, shutil, subprocess, sys
if "google.colab" in sys.modules:  # a fresh Colab runtime: get the code and import it from there, no restart
    CONTENT = os.environ.get("FER_COLAB_CONTENT", "/content")  # moved only by the tests' simulated Colab
    CODE = f"{CONTENT}/fer_lib"
    FIELD = "FER_REPO_URL" if os.environ.get("FER_REPO_URL") else "REPO_URL"  # papermill's -p cannot reach this cell
    REPO_URL = os.environ.get("FER_REPO_URL") or REPO_URL
    if "OWNER/REPO" in REPO_URL:
        raise SystemExit("Set REPO_URL in the form above to this repository's Git URL (https://github.com/<owner>/"
                         "<name>) or to a folder on Drive holding a copy of it; then run this cell again.")
    if REPO_URL.startswith(f"{CONTENT}/drive/"):
        from google.colab import drive; drive.mount(f"{CONTENT}/drive")
    local = os.path.isabs(REPO_URL)
    if local and not (os.path.exists(f"{REPO_URL}/.git") or os.path.isfile(f"{REPO_URL}/HEAD")):  # not a Git repository
        if not os.path.isfile(f"{REPO_URL}/fer_lib/__init__.py"):
            raise SystemExit(f"{FIELD} = {REPO_URL} is neither a Git repository nor a folder holding a copy of this "
                             "repository (with fer_lib/ in it): copy the repository there, or set its Git URL.")
        if os.path.realpath(REPO_URL) != os.path.realpath(CODE):
            shutil.rmtree(CODE, ignore_errors=True)
            shutil.copytree(REPO_URL, CODE)
    elif local or re.match(r"(https?|ssh|git|file)://|[\w.-]+@[\w.-]+:", REPO_URL):  # clone once, update on a rerun
        git = ["git", "-C", CODE, "pull", "--ff-only"]
        if not os.path.isdir(f"{CODE}/.git"):
            shutil.rmtree(CODE, ignore_errors=True)  # a copy made from another source
            git = ["git", "clone", "--depth", "1", f"file://{REPO_URL}" if local else REPO_URL, CODE]
        done = subprocess.run(git, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(git)} failed:\n{done.stderr.strip()}\nCheck {FIELD} (a private repository"
                             " needs access), or copy the repository to Drive and set REPO_URL to that folder.")
    else:
        raise SystemExit(f"{FIELD} = {REPO_URL!r} is not what it takes: a Git URL (https://github.com/<owner>/<name>), "
                         "the absolute path of a Git repository, or of a folder holding a copy of this repository.")
    sys.path.insert(0, CODE)
    from fer_lib.colab import prepare_runtime; prepare_runtime()

# %% tags=["parameters"]
#@title Parameters
#@markdown `ROOT`: the Drive root of drive_layout.md (empty: MyDrive/fer in Colab, ./demo_out elsewhere);
#@markdown `LOCAL`: the runtime's fast disk for hot copies (empty: /content/fer_local in Colab).
ROOT = ""  #@param {type:"string"}
LOCAL = ""  #@param {type:"string"}
#@markdown `RECIPE`: the named recipe (preset + training settings); `CV_NAME`: results in cv/<CV_NAME>/ on
#@markdown Drive, the same name resumes; `FOLDS`: "all", or fold numbers such as "0,1" to run some now.
RECIPE = "reference"  #@param ["reference"]
CV_NAME = "reference"  #@param {type:"string"}
FOLDS = "all"  #@param {type:"string"}
#@markdown `SMOKE`: the tiny preset, fold 0, one epoch, on 6 synthetic clips, so the notebook runs anywhere.
SMOKE = False  #@param {type:"boolean"}

# %%
from fer_lib import demo, show
from fer_lib.colab import flush_drive, mount_drive
from fer_lib.config import get_preset, get_recipe
from fer_lib.cv import cross_validate
from fer_lib.data import cache
from fer_lib.fileio import atomic_write_text
from fer_lib.paths import default_layout
from fer_lib.results import results_markdown

mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
model_config, train_config = get_recipe(RECIPE)
folds = None if FOLDS == "all" else [int(k) for k in FOLDS.split(",")]
source, local_cache = layout.preprocessed, layout.local_preprocessed  # read at full speed from the runtime's disk
if SMOKE:  # the smallest input the 6-fold split accepts, and the tiny preset as the demo trains it
    CV_NAME, folds, source, local_cache = "smoke", [0], demo.ensure_fold_cache(layout), layout.local / "cv_smoke"
    model_config, train_config = get_preset("tiny"), demo.smoke_train_config(epochs=1)
local_cache = cache.copy_to_local(source, local_cache)
print(f"recipe {RECIPE}: preset {model_config.preset}, {train_config.max_epochs} epochs at most, lr {train_config.lr}")

# %% [markdown]
# ## Train and evaluate every fold
# Each fold is a run folder `cv/<CV_NAME>/fold_<k>/` with its checkpoints, curves, layer-weight plot and
# test evaluation in all three modality modes (from the same weights).

# %%
summary = cross_validate(local_cache, layout.cv(CV_NAME), model_config, train_config, folds=folds, ablation=True)

# %% [markdown]
# ## The results table
# Mean ± std over the folds that are finished, the summed confusion matrix, and the table per fold and
# modality. `results_readme.md` is the README's Results section for this summary (in a clone of the
# repository, `python -m fer_lib.results --cv_dir <this folder>` writes it into README.md).

# %%
show.cross_validation(summary)
readme_block = results_markdown(summary)
atomic_write_text(layout.cv(CV_NAME) / "results_readme.md", readme_block)
show.markdown(readme_block)
flush_drive()
