# %% [markdown]
# # 01 · Data check: what is on Drive, what the model will see
#
# RAVDESS users most often get lost here, so this notebook says exactly what it found and what it
# expected. It
# 1. finds RAVDESS under `ravdess/` on Drive: the `Video_Speech_Actor_XX.zip` files (unpacked once)
#    or the `Actor_XX/` folders — 60 audio-visual speech clips per actor, 1440 in all;
# 2. opens every clip and reports each one it cannot use, and why (bad name, truncated file, no audio…);
# 3. shows one clip as preprocessing sees it: the face box and landmarks over time, the face crops,
#    and the audio window;
# 4. builds (or resumes) the one-time preprocessing cache, then copies it to the runtime's local disk.
#
# With `SMOKE = True` it runs on synthetic RAVDESS-format clips instead (what the tests do).

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
#@markdown `SMOKE`: synthetic clips when ravdess/ is empty, so the notebook runs anywhere;
#@markdown `WORKERS`: preprocessing processes (a Colab A100 runtime has 12 CPU cores).
SMOKE = False  #@param {type:"boolean"}
WORKERS = 2  #@param {type:"integer"}

# %%
from fer_lib import demo, show
from fer_lib.colab import mount_drive
from fer_lib.data import cache
from fer_lib.data.index import check_data
from fer_lib.paths import default_layout
from fer_lib.preprocess import inspect_clip, preprocess

mount_drive()
layout = default_layout(ROOT, LOCAL).create()
if SMOKE:
    demo.ensure_clips(layout)

# %% [markdown]
# ## Integrity report
# Every file under `ravdess/` is indexed from its name (`modality-vocal-emotion-intensity-statement-repetition-actor`)
# and opened. Video-only (`02-…`) and song files are counted and set aside; anything unusable is listed
# with its reason and saved as `report.json` / `problems.csv` next to the cache.

# %%
index = check_data(layout.ravdess, out_dir=layout.preprocessed)

# %% [markdown]
# Each cell counts the clips of one actor and emotion; green means all expected clips are there
# (4 for neutral, which has no strong intensity, 8 for the others).

# %%
show.data_check(index)

# %% [markdown]
# ## One clip through the preprocessing
# One 3-second window is placed on the speech (by audio energy) and shared by both modalities. In that
# window, 16 frames are taken; MTCNN finds the face on a few downscaled keyframes and tracks it on all 16,
# giving a face box (dashed where the face was filled in from its neighbours) and 5 landmarks per frame.

# %%
print(index.clips[0].path.name)
show.clip_inspection(inspect_clip(index.clips[0].path))

# %% [markdown]
# ## The preprocessing cache
# Decoding mp4 files and finding faces on every epoch is what makes naive training slow, so every clip
# is decoded once into one cache file. The run resumes where it stopped; a re-run with nothing new
# takes seconds. Changing a preprocessing parameter needs a new cache folder: the manifest refuses to
# mix two settings. Many small files on Drive are slow to read, so the cache is then copied to the
# runtime's local disk, where training reads it.

# %%
summary = preprocess(layout.ravdess, layout.preprocessed, workers=WORKERS)
cache.copy_to_local(layout.preprocessed, layout.local_preprocessed)
print(f"cache ready for training: {layout.local_preprocessed}")
