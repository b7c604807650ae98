# %% [markdown]
# # 05 · Emotions over time in your own video
#
# Any mp4 or mov, of any length or frame rate, with or without sound. A window of the training length
# (3 s) slides over the clip; each window gets emotion probabilities, and the overall label is their
# mean. Without an audio track the model runs visual-only; without a face, audio-only (with a warning).
#
# In Colab, leave `VIDEO = None` to upload a clip, or give a path on Drive.

# %%
import subprocess, sys
if "google.colab" in sys.modules:  # fresh Colab runtime: fetch the code, importable without a restart
    subprocess.run("git -C /content/fer_lib pull -q || git clone -q --depth 1 https://github.com/OWNER/REPO /content/fer_lib", shell=True, check=True)  # OWNER/REPO: placeholder
    sys.path.insert(0, "/content/fer_lib")
    from fer_lib.colab import install_requirements; install_requirements()
# %% tags=["parameters"]
ROOT = None  # Drive root of drive_layout.md; None = MyDrive/fer in Colab, ./demo_out elsewhere
LOCAL = None  # the runtime's fast disk for hot copies; None = /content/fer_local in Colab
RUN_NAME = "lightweight"  # the run whose best checkpoint predicts
VIDEO = None  # a video path; None: upload one (Colab)
SMOKE = False  # True: a tiny run and a long synthetic clip, so the notebook runs anywhere

# %%
from fer_lib import demo, show
from fer_lib.colab import mount_drive, upload_file
from fer_lib.paths import default_layout
from fer_lib.predict import predict_video

mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
if SMOKE:  # synthetic clips, their cache and a 2-epoch tiny run, made only where missing
    RUN_NAME = demo.ensure_run(layout, epochs=2).run_dir.name
    VIDEO = VIDEO or demo.ensure_long_clip(layout)
VIDEO = VIDEO or upload_file(layout.local)

# %% [markdown]
# ## Predict
# Outputs go to `predictions/<video name>/` on Drive: `windows.csv` (one row per window), `timeline.png`,
# `prediction.json` (the overall label) and `faces.png` (the face crops the model saw).

# %%
result = predict_video(VIDEO, layout.run(RUN_NAME))  # into predictions/<video name>/ beside runs/
show.prediction(result)
