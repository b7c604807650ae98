# %% [markdown]
# # 03 · Training that survives Colab
#
# Training writes everything to `runs/<RUN_NAME>/` on Drive: the resolved config, the actors of each
# split part, `checkpoints/last` and `checkpoints/best`, per-epoch metrics and curves. Colab runtimes
# disconnect: **run this notebook again and it continues from `last`** — same epoch, step, optimizer
# state and data order. Checkpoints hold only the trainable weights (frozen pretrained encoders are
# reloaded from the hub), and are written locally, verified, then copied to Drive under a temporary
# name and renamed, so a disconnect never leaves a half-written checkpoint.
#
# With frozen encoders (`lightweight`, `full`), their outputs are computed once per clip and cached
# (fp16, memory-mapped); later epochs run only the trainable parts.
#
# The optional stage 3 starts from the best checkpoint with the visual encoder unfrozen, at a lower
# learning rate.

# %%
import subprocess, sys
if "google.colab" in sys.modules:  # fresh Colab runtime: fetch the code, importable without a restart
    subprocess.run("git -C /content/fer_lib pull -q || git clone -q --depth 1 https://github.com/OWNER/REPO /content/fer_lib", shell=True, check=True)  # OWNER/REPO: placeholder
    sys.path.insert(0, "/content/fer_lib")
    from fer_lib.colab import install_requirements; install_requirements()
# %% tags=["parameters"]
ROOT = None  # Drive root of drive_layout.md; None = MyDrive/fer in Colab, ./demo_out elsewhere
LOCAL = None  # the runtime's fast disk for hot copies; None = /content/fer_local in Colab
PRESET = "lightweight"  # tiny | lightweight | full
RUN_NAME = "lightweight"  # runs/<RUN_NAME>/ on Drive; the same name resumes
MODALITIES = "av"  # av | a | v
FOLD = None  # None: the fixed actor split; 0-5: an actor fold (6 folds of 4 actors)
MAX_EPOCHS = 50
BATCH_SIZE = 8
GRAD_ACCUM_STEPS = 2
LR = 1e-4
EARLY_STOPPING_PATIENCE = 15
USE_WANDB = False  # key from Colab secrets (WANDB_API_KEY); offline without one, never a prompt
STAGE3 = False  # then fine-tune with the visual encoder unfrozen
STAGE3_EPOCHS = 20
STAGE3_LR = 1e-5
SMOKE = False  # True: the tiny preset for 2 epochs on synthetic clips, so the notebook runs anywhere

# %%
from fer_lib import demo
from fer_lib.colab import flush_drive, mount_drive
from fer_lib.config import TrainConfig
from fer_lib.data import cache
from fer_lib.paths import default_layout
from fer_lib.train import STAGE3_PARTS, stage3_config, train

mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
if SMOKE:
    demo.ensure_cache(layout)  # synthetic clips and their cache, made only where missing
cache.copy_to_local(layout.preprocessed, layout.local_preprocessed)

# %% [markdown]
# ## Train (or resume)
# The printout names the run folder, the actors of each part, the device and precision (bf16 on an
# A100). The loss and accuracy curves below update after every epoch. Early stopping watches the
# validation macro-F1.

# %%
config = TrainConfig(max_epochs=MAX_EPOCHS, batch_size=BATCH_SIZE, grad_accum_steps=GRAD_ACCUM_STEPS, lr=LR,
                     early_stopping_patience=EARLY_STOPPING_PATIENCE, modalities=MODALITIES, fold=FOLD,
                     use_wandb=USE_WANDB)
if SMOKE:  # the tiny preset, trained as the demo trains it (2 epochs)
    PRESET, RUN_NAME, config, STAGE3_EPOCHS = "tiny", demo.SMOKE_RUN, demo.smoke_train_config(epochs=2), 1
result = train(layout.local_preprocessed, layout.root / "runs", PRESET, config, run_name=RUN_NAME,
               embedding_dir=layout.embeddings)
print(f"best validation {result.metric} {result.best_metric:.3f} at epoch {result.best_epoch}")

# %% [markdown]
# ## Stage 3 (optional): fine-tune the visual encoder
# A new run folder (`<RUN_NAME>-stage3`) starts from the best weights above, with the SigLIP2 tower
# trainable and a smaller learning rate. Its encoder outputs change every step, so it is not cached.

# %%
if STAGE3:
    stage3 = stage3_config(config, result.best_checkpoint, STAGE3_EPOCHS, STAGE3_LR)
    result = train(layout.local_preprocessed, layout.root / "runs", PRESET, stage3, run_name=f"{RUN_NAME}-stage3",
                   unfreeze=STAGE3_PARTS, embedding_dir=layout.embeddings)

# %% [markdown]
# Drive writes land late: flushing makes sure every checkpoint is really on Drive before the runtime goes.

# %%
print(f"run folder: {result.run_dir}")
flush_drive()
