# %% [markdown]
# # 01 · Data check: get RAVDESS, check it, build the cache
#
# RAVDESS users most often get lost here, so this notebook says exactly what it found and what it
# expected. It
# 1. gets the data. If you put the `Video_Speech_Actor_XX.zip` files or the `Actor_XX/` folders in
#    `ravdess/` on Drive, it uses those. Otherwise, with `DOWNLOAD = True`, it downloads RAVDESS from
#    its home on Zenodo, actor by actor: each zip goes to the runtime's local disk, its 60
#    audio-visual speech clips are preprocessed into the cache on Drive, and the zip is deleted.
#    Before writing to Drive it prints how much the cache will take and the free space it sees;
#    when that does not fit, it stops and says so;
# 2. reports what the cache holds against what RAVDESS has (60 audio-visual speech clips per actor,
#    1440 in all), and every clip it could not use, and why (bad name, truncated file, no face…);
# 3. shows one clip as preprocessing sees it: the face box and landmarks over time, the face crops,
#    and the audio window;
# 4. copies the cache to the runtime's local disk, where training reads it.
#
# With `SMOKE = True` it runs on synthetic RAVDESS-format clips in a scratch folder instead (what the
# tests do); your `ravdess/` and `cache/` on Drive are not touched.

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
#@markdown `SMOKE`: synthetic clips in a scratch folder on the runtime's disk, so the notebook runs anywhere.
SMOKE = False  #@param {type:"boolean"}
#@markdown `DOWNLOAD`: fetch RAVDESS when `ravdess/` on Drive is empty and the cache is incomplete;
#@markdown `ACTORS`: the actors to get and check: "1-24" or "all", "1-4" for a first look (about 2.2 GB to download
#@markdown instead of 13.4 GB), "1,3,5", or one number; `SOURCE`: where from, a Zenodo records-API URL (a mirror).
DOWNLOAD = True  #@param {type:"boolean"}
ACTORS = "1-24"  #@param {type:"string"}
SOURCE = "https://zenodo.org/api/records/1188976"  #@param {type:"string"}
#@markdown `WORKERS`: preprocessing processes (0: one per CPU core; a Colab A100 runtime has 12).
WORKERS = 0  #@param {type:"integer"}

# %%
from fer_lib import demo, show
from fer_lib.colab import mount_drive
from fer_lib.data import cache
from fer_lib.data.download import actor_list, ensure_dataset, inspect_example
from fer_lib.paths import default_layout

actors = actor_list(ACTORS)
mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
if SMOKE:
    demo.ensure_clips(layout)

# %% [markdown]
# ## Getting the data
# RAVDESS is licensed CC BY-NC-SA 4.0 (non-commercial, share-alike); the download prints the
# licence and the citation first. Every zip's md5 checksum is verified. Interrupted (a disconnect,
# the stop button), the same cell resumes: cached actors are skipped, a finished zip is not
# downloaded again, a partial one continues where it stopped. One bar counts the bytes, the other the
# clips the zips hold; the preprocessing of the actors already downloaded runs while the next ones
# download. A table says what was done. A zip whose md5 stays wrong stops the cell with one line:
# try again later or set `SOURCE` to a mirror.

# %%
summary = ensure_dataset(layout, download_missing=DOWNLOAD, actors=actors, source=SOURCE, workers=WORKERS or None)
show.data_summary(summary)

# %% [markdown]
# ## Integrity report
# What the cache holds of the `ACTORS` you chose, per actor and emotion, against what RAVDESS has.
# Video-only (`02-…`) and song files are counted and set aside; anything unusable is listed with its
# reason and saved as `report.json` / `problems.csv` in the cache folder. In the figure, each cell
# shows the clips found, coloured by the share of the expected clips (4 for neutral, which has no
# strong intensity, 8 for the others): green cells are complete, red ones empty.

# %%
index = cache.as_index(layout.preprocessed, actors)
print(index.summary())
show.data_check(index)

# %% [markdown]
# ## One clip through the preprocessing
# One 3-second window is placed on the speech (by audio energy) and shared by both modalities. In that
# window, 16 frames are taken; MTCNN finds the face on a few downscaled keyframes and tracks it on all 16,
# giving a face box (dashed where the face was filled in from its neighbours) and 5 landmarks per frame.
# Downloaded clips are deleted once cached; then the cached crops are shown instead of whole frames.

# %%
show.clip_inspection(inspect_example(layout))

# %% [markdown]
# ## The preprocessing cache
# Decoding mp4 files and finding faces on every epoch is what makes naive training slow, so every clip
# is decoded once into the cache: one file per actor (a shard), with the face crops as JPEG and the
# audio as 16-bit samples, about 0.3 MB a clip. Changing a preprocessing parameter needs a new cache
# folder: the manifest refuses to mix two settings. Training reads a copy on the runtime's local disk.

# %%
cache.copy_to_local(layout.preprocessed, layout.local_preprocessed)
print(f"cache ready for training: {layout.local_preprocessed}")
