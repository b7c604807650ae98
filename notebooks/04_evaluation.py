# %% [markdown]
# # 04 · Evaluation: honest numbers, and where the model goes wrong
#
# The best checkpoint of a run is evaluated on its **test actors**, who were never seen in training
# or validation (the split is stored with every checkpoint). Reported: accuracy (WAR), UAR (mean
# per-class recall), macro-F1, per-class precision/recall/F1, and the confusion matrix. Every figure
# is recomputed from `predictions.csv`, which is saved beside it.
#
# Then: the modality ablation (audio only, visual only, both — from the same weights), an interactive
# per-emotion confusion explorer, the cross-validation summary when folds were run, and sharing the model
# on the Hugging Face Hub. A model someone shared there is evaluated the same way: `RUN_NAME = "hf://USER/NAME"`.
#
# Published RAVDESS results use 6 folds of 4 consecutive actors (1-4, …, 21-24); a single split is a
# first look, not a comparable number.

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
#@markdown `RUN_NAME`: runs/<RUN_NAME>/ to evaluate, or a model on the Hugging Face Hub (`hf://USER/NAME[@REVISION]`);
#@markdown `CV_NAME`: cv/<CV_NAME>/ to summarise, when cross-validation was run (empty: none); `SMOKE`: a tiny run
#@markdown on synthetic clips, so the notebook runs anywhere.
RUN_NAME = "lightweight"  #@param {type:"string"}
CV_NAME = ""  #@param {type:"string"}
SMOKE = False  #@param {type:"boolean"}
#@markdown `PUSH_TO_HUB`: upload the run's best checkpoint with its model card to the Hub as `REPO_ID` (USER/NAME),
#@markdown with the token of the Colab secret `HF_TOKEN` (last section).
PUSH_TO_HUB = False  #@param {type:"boolean"}
REPO_ID = ""  #@param {type:"string"}

# %%
from fer_lib import cv, demo, show
from fer_lib.colab import mount_drive
from fer_lib.data import cache
from fer_lib.evaluate import evaluate
from fer_lib.explorer import explore
from fer_lib.paths import default_layout

mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
if SMOKE:  # synthetic clips, their cache and a 2-epoch tiny run, made only where missing
    RUN_NAME = demo.ensure_run(layout, epochs=2).run_dir.name
cache_dir = cache.copy_to_local(layout.preprocessed, layout.local_preprocessed)  # the cache on local disk

# %% [markdown]
# ## Test metrics and the modality ablation
# One pass over the test clips gives all three modes. Results go to a new folder under the run's
# `eval/` (earlier evaluations are never overwritten); for a model from the Hub, under `hub/USER--NAME/eval/`,
# and every report names the commit it loaded.

# %%
# A run that Drive holds only in part (its training lost Drive, or is not over) is evaluated all the same,
# with a warning here and in the report; the command line refuses it without --allow_incomplete.
report = evaluate(layout.checkpoint(RUN_NAME), cache_dir, ablation=True, out=layout.evaluations(RUN_NAME),
                  allow_incomplete=True)
show.evaluation(report)

# %% [markdown]
# ## Per-emotion confusion explorer
# Pick an emotion to see its row and column of the confusion matrix, its most frequent confusions and
# the clips it got wrong — each with its face-crop strip, a player for the audio the model heard and, when
# the RAVDESS clips are on Drive (`ravdess/`), the video itself. Pick a true/predicted pair to see exactly
# those clips. Below the widget, the same information is shown as static tables and images, for GitHub
# and for runs without a live kernel.

# %%
explorer = explore(report["files"]["predictions"], cache_dir, subtitle=report["subtitle"],
                   video_dir=layout.ravdess)

# %% [markdown]
# ## Cross-validation summary
# `python -m fer_lib.cv` (or `fer_lib.cv.cross_validate`) trains and evaluates every actor fold into
# `cv/<name>/`; here its mean ± std over folds and the summed confusion matrix are shown.

# %%
if CV_NAME and layout.cv(CV_NAME).exists():
    show.cross_validation(cv.aggregate(layout.cv(CV_NAME)))
else:
    print("no cross-validation folder given (CV_NAME)")

# %% [markdown]
# ## Share this model
# `PUSH_TO_HUB` uploads the best checkpoint of the run to the Hugging Face Hub as `REPO_ID`: the trained
# weights only (the frozen encoders load from their own repositories at pinned revisions), the config, the
# split, and a model card written from the evaluation above: its numbers, the confusion matrix, the ablation,
# the training settings, RAVDESS's licence (CC BY-NC-SA 4.0: non-commercial, share-alike) and what the model is
# not for. The token comes from the Colab secret `HF_TOKEN` (the key icon on the left; a token with write access
# from huggingface.co/settings/tokens) or the environment, never from a prompt. Anyone can then use the model with
# `hf://REPO_ID`: in notebook 05 (`RUN_NAME`), in this notebook, or `python -m fer_lib.predict VIDEO --checkpoint hf://REPO_ID`.

# %%
from fer_lib import hub

if PUSH_TO_HUB:
    hub.push(layout.run(RUN_NAME), REPO_ID)  # prints the hub id that loads exactly this upload
else:
    print("not uploaded (PUSH_TO_HUB is off)")
