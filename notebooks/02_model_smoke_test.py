# %% [markdown]
# # 02 · Model smoke test: build a preset, check it before spending GPU hours
#
# This notebook builds the chosen preset, prints its parameter table and a training-memory estimate,
# and runs one forward and backward pass on a real batch from the cache in all three modality modes:
# audio only, visual only, and both — the same weights serve all three. It ends by showing which
# patch tokens the landmark-guided ROI compression keeps on a face.
#
# Presets: `tiny` (small random-init backbones, CPU), `lightweight` (pretrained SigLIP2 and FastConformer,
# frozen, small LFM2), `full` (plus pretrained LFM2-700M). The pretrained ones download from the
# Hugging Face hub the first time.

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
#@markdown `BATCH_SIZE` is for the memory estimate (the smoke batch itself is 2 clips); `SMOKE`: the tiny
#@markdown preset on synthetic clips, so the notebook runs anywhere.
PRESET = "lightweight"  #@param ["tiny", "lightweight", "full"]
BATCH_SIZE = 8  #@param {type:"integer"}
SMOKE = False  #@param {type:"boolean"}

# %%
import torch

from fer_lib import demo, show
from fer_lib.colab import mount_drive
from fer_lib.config import get_preset
from fer_lib.data import cache
from fer_lib.data.dataset import RavdessDataset, collate
from fer_lib.models import build_model, hub_revisions, smoke
from fer_lib.models.sizes import estimate_training_memory, format_parameter_table, parameter_table
from fer_lib.paths import default_layout

mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
if SMOKE:
    PRESET = "tiny"
    demo.ensure_cache(layout)  # synthetic clips and their cache, made only where missing
device = "cuda" if torch.cuda.is_available() else "cpu"

# %% [markdown]
# ## Parameters and memory
# Frozen encoders count in the total but not in the trainable column: their outputs can be cached once
# (the embedding cache), so each epoch only runs the trainable parts. The memory figure is an analytical
# estimate (weights, gradients, AdamW states, activations), not a measurement.

# %%
# A part the code does not pin loads the commit recorded beside the runs, as training will (fer_lib.models.hub_revisions).
config = hub_revisions.pin_revisions(get_preset(PRESET), layout.runs / hub_revisions.LOCK_FILE)
model = build_model(config).to(device)
print(format_parameter_table(parameter_table(model)))
memory = estimate_training_memory(model, BATCH_SIZE, "bf16")
print(f"\nestimated training memory at batch {BATCH_SIZE}, bf16: {memory['total'] / 1024**3:.2f} GB")

# %% [markdown]
# ## Forward and backward in all three modes
# A missing modality is replaced by a learned "missing" token in the fusion, so the other branch's
# output does not change. The loss must be finite and gradients must reach the trainable parts.

# %%
cache_dir = layout.local_preprocessed if cache.is_cache(layout.local_preprocessed) else layout.preprocessed
dataset = RavdessDataset(cache_dir)
batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate([dataset[0], dataset[1]]).items()}
print(smoke.format_rows(smoke.forward_backward(model, batch)))

# %% [markdown]
# ## The tokens ROI compression keeps
# Of the 196 patch tokens SigLIP2 gives per frame, 68 are kept: a coarse grid of context tokens plus the
# tokens nearest to the eyes, brows, nose and mouth corners (the landmarks from preprocessing).

# %%
show.roi_tokens(model, batch)
