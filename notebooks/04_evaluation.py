# %% [markdown]
# # 04 · Evaluation: honest numbers, and where the model goes wrong
#
# The best checkpoint of a run is evaluated on its **test actors**, who were never seen in training
# or validation (the split is stored with every checkpoint). Reported: accuracy (WAR), UAR (mean
# per-class recall), macro-F1, per-class precision/recall/F1, and the confusion matrix. Every figure
# is recomputed from `predictions.csv`, which is saved beside it.
#
# Then: the modality ablation (audio only, visual only, both — from the same weights), an interactive
# per-emotion confusion explorer, and the cross-validation summary when folds were run.
#
# Published RAVDESS results use 6 folds of 4 consecutive actors (1-4, …, 21-24); a single split is a
# first look, not a comparable number.

# %%
import subprocess, sys
if "google.colab" in sys.modules:  # fresh Colab runtime: fetch the code, importable without a restart
    subprocess.run("git -C /content/fer_lib pull -q || git clone -q --depth 1 https://github.com/OWNER/REPO /content/fer_lib", shell=True, check=True)  # OWNER/REPO: placeholder
    sys.path.insert(0, "/content/fer_lib")
    from fer_lib.colab import install_requirements; install_requirements()
# %% tags=["parameters"]
ROOT = None  # Drive root of drive_layout.md; None = MyDrive/fer in Colab, ./demo_out elsewhere
LOCAL = None  # the runtime's fast disk for hot copies; None = /content/fer_local in Colab
RUN_NAME = "lightweight"  # runs/<RUN_NAME>/ to evaluate
CV_NAME = None  # cv/<CV_NAME>/ to summarise, when cross-validation was run
SMOKE = False  # True: a tiny run on synthetic clips, so the notebook runs anywhere

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
cache.copy_to_local(layout.preprocessed, layout.local_preprocessed)

# %% [markdown]
# ## Test metrics and the modality ablation
# One pass over the test clips gives all three modes. Results go to a new folder under the run's
# `eval/` (earlier evaluations are never overwritten).

# %%
report = evaluate(layout.run(RUN_NAME), layout.local_preprocessed, ablation=True)
show.evaluation(report)

# %% [markdown]
# ## Per-emotion confusion explorer
# Pick an emotion to see its row and column of the confusion matrix, its most frequent confusions and
# the clips it got wrong — each with its face-crop strip and a player for the audio the model heard.
# Pick a true/predicted pair to see exactly those clips. Below the widget, the same information is
# shown as static tables and images, for GitHub and for runs without a live kernel.

# %%
explorer = explore(report["files"]["predictions"], layout.local_preprocessed, subtitle=report["subtitle"])

# %% [markdown]
# ## Cross-validation summary
# `python -m fer_lib.cv` (or `fer_lib.cv.cross_validate`) trains and evaluates every actor fold into
# `cv/<name>/`; here its mean ± std over folds and the summed confusion matrix are shown.

# %%
if CV_NAME and layout.cv(CV_NAME).exists():
    show.cross_validation(cv.aggregate(layout.cv(CV_NAME)))
else:
    print("no cross-validation folder given (CV_NAME)")
