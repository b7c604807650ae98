# %% [markdown]
# # 03 · Training that survives Colab
#
# A run lives in `runs/<RUN_NAME>/` on Drive: the resolved config, the actors of each split part,
# `checkpoints/last` and `checkpoints/best`, per-epoch metrics and curves. Colab runtimes disconnect:
# **run this notebook again and it continues from `last`** — same epoch, step, optimizer state and data
# order. Checkpoints hold only the trainable weights (frozen pretrained encoders are reloaded from the hub).
#
# Training writes the run to the runtime's local disk first (a checkpoint every epoch) and copies it to
# Drive every `SYNC_MINUTES` and at the end, overwriting the files there in place: Drive keeps deleted
# files in its trash, counted against the quota, for 30 days. **A disconnect loses at most
# `SYNC_MINUTES` of training.** If Drive goes away during training (an idle drop, an unmount), training
# goes on locally, says so after every epoch, and copies the run as soon as Drive is back.
#
# With frozen encoders (`lightweight`, `full`), their outputs are computed once per clip and cached
# (fp16, memory-mapped); later epochs run only the trainable parts.
#
# The optional stage 3 starts from the best checkpoint with the visual encoder unfrozen, at a lower
# learning rate.

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
#@markdown `RUN_NAME`: runs/<RUN_NAME>/ on Drive; the same name resumes. `FOLD`: "fixed" is the fixed actor
#@markdown split, 0-5 an actor fold (6 folds of 4 actors).
PRESET = "lightweight"  #@param ["tiny", "lightweight", "full"]
RUN_NAME = "lightweight"  #@param {type:"string"}
MODALITIES = "av"  #@param ["av", "a", "v"]
FOLD = "fixed"  #@param ["fixed", "0", "1", "2", "3", "4", "5"]
MAX_EPOCHS = 50  #@param {type:"integer"}
BATCH_SIZE = 8  #@param {type:"integer"}
GRAD_ACCUM_STEPS = 2  #@param {type:"integer"}
LR = 1e-4  #@param {type:"number"}
EARLY_STOPPING_PATIENCE = 15  #@param {type:"integer"}
#@markdown `SYNC_MINUTES`: the run folder on Drive is updated at most this often, and at the end; a disconnect
#@markdown loses at most this much training. `USE_WANDB`: key from Colab secrets (WANDB_API_KEY), offline
#@markdown without one, never a prompt.
SYNC_MINUTES = 10  #@param {type:"number"}
USE_WANDB = False  #@param {type:"boolean"}
#@markdown `STAGE3`: then fine-tune with the visual encoder unfrozen, in a run folder of its own.
STAGE3 = False  #@param {type:"boolean"}
STAGE3_EPOCHS = 20  #@param {type:"integer"}
STAGE3_LR = 1e-5  #@param {type:"number"}
#@markdown `SMOKE`: the tiny preset for 2 epochs on synthetic clips, so the notebook runs anywhere.
SMOKE = False  #@param {type:"boolean"}

# %%
from fer_lib import demo, show
from fer_lib.colab import flush_drive, mount_drive
from fer_lib.config import TrainConfig
from fer_lib.data import cache
from fer_lib.paths import default_layout
from fer_lib.train import STAGE3_PARTS, stage3_config, train

mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
if SMOKE:
    demo.ensure_cache(layout)  # synthetic clips and their cache, made only where missing
cache_dir = cache.copy_to_local(layout.preprocessed, layout.local_preprocessed)  # read every epoch: local disk

# %% [markdown]
# ## The GPU and the memory
# Everything runs on the GPU when there is one. The estimate below (weights, gradients, optimizer
# states, activations: an analytical figure, not a measurement) is for the preset and batch size above,
# against the GPUs Colab hands out. Without a GPU only `tiny` is meant to train.

# %%
config = TrainConfig(max_epochs=MAX_EPOCHS, batch_size=BATCH_SIZE, grad_accum_steps=GRAD_ACCUM_STEPS, lr=LR,
                     early_stopping_patience=EARLY_STOPPING_PATIENCE, modalities=MODALITIES,
                     fold=None if FOLD == "fixed" else int(FOLD), use_wandb=USE_WANDB)
if SMOKE:  # the tiny preset, trained as the demo trains it
    PRESET, RUN_NAME, config, STAGE3_EPOCHS = "tiny", demo.SMOKE_RUN, demo.smoke_train_config(epochs=2), 1
show.training_plan(PRESET, config.batch_size)

# %% [markdown]
# ## Train (or resume)
# The printout names the run folder, the actors of each part, the device and precision (bf16 on an
# A100). The loss and accuracy curves below update after every epoch. Early stopping watches the
# validation macro-F1.
#
# **Stopping this cell** (the stop button) finishes the step under way, writes a checkpoint of it, copies
# the run to Drive and says in one line where it stopped and what Drive holds; run the notebook again to
# continue. A new runtime (after a disconnect) takes the run over once the old one has been silent for
# 2 minutes. If Drive is still gone when training ends, the cell fails with one line saying what Drive
# holds against what training reached: remount Drive and run it again (nothing is trained twice).

# %%
result = train(cache_dir, layout.runs, PRESET, config, run_name=RUN_NAME,
               embedding_dir=layout.embeddings, local_dir=layout.local_runs, sync_minutes=SYNC_MINUTES)
print(f"best validation {result.metric} {result.best_metric:.3f} at epoch {result.best_epoch}")

# %% [markdown]
# ## Stage 3 (optional): fine-tune the visual encoder
# A new run folder (`<RUN_NAME>-stage3`) starts from the best weights above, with the SigLIP2 tower
# trainable and a smaller learning rate. Its encoder outputs change every step, so it is not cached.

# %%
if STAGE3:
    stage3 = stage3_config(config, result.best_checkpoint, STAGE3_EPOCHS, STAGE3_LR)
    result = train(cache_dir, layout.runs, PRESET, stage3, run_name=f"{RUN_NAME}-stage3",
                   unfreeze=STAGE3_PARTS, embedding_dir=layout.embeddings, local_dir=layout.local_runs,
                   sync_minutes=SYNC_MINUTES)

# %% [markdown]
# Drive writes land late: flushing makes sure every file of the run is really on Drive before the runtime
# goes (it also unmounts Drive; the next notebook mounts it again).

# %%
flush_drive()
print(f"run folder: {result.run_dir}")
