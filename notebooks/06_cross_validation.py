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
import subprocess, sys
if "google.colab" in sys.modules:  # fresh Colab runtime: fetch the code, importable without a restart
    subprocess.run("git -C /content/fer_lib pull -q || git clone -q --depth 1 https://github.com/OWNER/REPO /content/fer_lib", shell=True, check=True)  # OWNER/REPO: placeholder
    sys.path.insert(0, "/content/fer_lib")
    from fer_lib.colab import install_requirements; install_requirements()
# %% tags=["parameters"]
ROOT = None  # Drive root of drive_layout.md; None = MyDrive/fer in Colab, ./demo_out elsewhere
LOCAL = None  # the runtime's fast disk for hot copies; None = /content/fer_local in Colab
RECIPE = "reference"  # the named recipe: preset + training settings
CV_NAME = "reference"  # results in cv/<CV_NAME>/ on Drive; the same name resumes
FOLDS = None  # None: all 6; or a list such as [0, 1] to run some now and the rest later
SMOKE = False  # True: the tiny preset, fold 0, one epoch, on 6 synthetic clips, so the notebook runs anywhere

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
layout = default_layout(ROOT, LOCAL).create()
model_config, train_config = get_recipe(RECIPE)
source, local_cache = layout.preprocessed, layout.local_preprocessed  # read at full speed from the runtime's disk
if SMOKE:  # the smallest input the 6-fold split accepts, and the tiny preset as the demo trains it
    CV_NAME, FOLDS, source, local_cache = "smoke", [0], demo.ensure_fold_cache(layout), layout.local / "cv_smoke"
    model_config, train_config = get_preset("tiny"), demo.smoke_train_config(epochs=1)
cache.copy_to_local(source, local_cache)
print(f"recipe {RECIPE}: preset {model_config.preset}, {train_config.max_epochs} epochs at most, lr {train_config.lr}")

# %% [markdown]
# ## Train and evaluate every fold
# Each fold is a run folder `cv/<CV_NAME>/fold_<k>/` with its checkpoints, curves, layer-weight plot and
# test evaluation in all three modality modes (from the same weights).

# %%
summary = cross_validate(local_cache, layout.cv(CV_NAME), model_config, train_config, folds=FOLDS, ablation=True)

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
