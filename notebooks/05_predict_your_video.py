# %% [markdown]
# # 05 · Emotions over time in your own video
#
# Any mp4 or mov, of any length or frame rate, with or without sound. A window of the training length
# (3 s) slides over the clip; each window gets emotion probabilities, and the overall label is their
# mean. Without an audio track the model runs visual-only; without a face, audio-only (with a warning).
#
# In Colab, leave `VIDEO = None` to upload a clip, or give a path on Drive.

# %%
#@title Setup: get the code
REPO_URL = "https://github.com/OWNER/REPO"  #@param {type:"string"}
#@markdown The Git URL of this repository, or a folder on Drive holding a copy of it (`/content/drive/MyDrive/fer/code`).
import os, shutil, subprocess, sys
if "google.colab" in sys.modules:  # a fresh Colab runtime: get the code and import it from there, no restart
    CONTENT = os.environ.get("FER_COLAB_CONTENT", "/content")  # moved only by the tests' simulated Colab
    CODE = f"{CONTENT}/fer_lib"
    if "OWNER/REPO" in REPO_URL:
        raise SystemExit("Set REPO_URL in the form above to this repository's Git URL (https://github.com/<owner>/"
                         "<name>) or to a folder on Drive holding a copy of it; then run this cell again.")
    if os.path.isabs(REPO_URL):  # a copy on Drive
        from google.colab import drive; drive.mount(f"{CONTENT}/drive")
        if not os.path.isdir(REPO_URL):
            raise SystemExit(f"{REPO_URL} is not a folder: copy the repository there, or set REPO_URL to its Git URL.")
        shutil.copytree(REPO_URL, CODE, dirs_exist_ok=True)
    else:  # clone once, update on a rerun
        git = ["git", "clone", "--depth", "1", REPO_URL, CODE]
        if os.path.isdir(f"{CODE}/.git"):
            git = ["git", "-C", CODE, "pull", "--ff-only"]
        done = subprocess.run(git, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(git)} failed:\n{done.stderr.strip()}\nCheck REPO_URL (a private repository"
                             " needs access), or copy the repository to Drive and set REPO_URL to that folder.")
    sys.path.insert(0, CODE)
    from fer_lib.colab import prepare_runtime; prepare_runtime()

# %% tags=["parameters"]
#@title Parameters
#@markdown `ROOT`: the Drive root of drive_layout.md (empty: MyDrive/fer in Colab, ./demo_out elsewhere);
#@markdown `LOCAL`: the runtime's fast disk for hot copies (empty: /content/fer_local in Colab).
ROOT = ""  #@param {type:"string"}
LOCAL = ""  #@param {type:"string"}
#@markdown `RUN_NAME`: the run whose best checkpoint predicts, or a model on the Hugging Face Hub
#@markdown (`hf://USER/NAME[@REVISION]`, shared from notebook 04); `VIDEO`: a video path (empty: upload one);
#@markdown `SMOKE`: a tiny run and a long synthetic clip, so the notebook runs anywhere.
RUN_NAME = "lightweight"  #@param {type:"string"}
VIDEO = ""  #@param {type:"string"}
SMOKE = False  #@param {type:"boolean"}

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
result = predict_video(VIDEO, layout.checkpoint(RUN_NAME), out=layout.predictions_root)  # predictions/<video name>/
show.prediction(result)
