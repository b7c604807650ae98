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

# %% [markdown]
# ## The web app
# The same prediction in a page: upload a video, record one from the webcam (with the microphone), or give
# a sound file alone; example clips are one click away. It shows the emotions over time, the overall emotion,
# the face the model saw in each window, the three modality modes side by side, and the timeline as a CSV.
# In Colab the page opens below this cell (through Colab's own proxy); `SHARE` also makes a public link.
# From a terminal: `python -m fer_lib.app --checkpoint RUN_DIR` (README, "The web app").

# %%
#@title Start the web app
APP_CHECKPOINT = ""  #@param {type:"string"}
#@markdown A run or checkpoint folder, or a Hugging Face Hub id `hf://USER/NAME` (empty: the run above).
SHARE = False  #@param {type:"boolean"}
from fer_lib import app

page = app.launch(APP_CHECKPOINT or layout.run(RUN_NAME), share=SHARE)
