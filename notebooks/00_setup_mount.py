# %% [markdown]
# # 00 · Setup: Drive, code, packages
#
# Run this once per fresh Colab runtime (**Runtime → Run all**). It
# 1. mounts Google Drive, where everything that must survive a disconnect lives;
# 2. fetches this repository into `/content/fer_lib` and puts it on `sys.path` — no editable
#    install, so no runtime restart is needed;
# 3. installs only what Colab lacks (`requirements-colab.txt`), at the versions the tests passed with
#    (`constraints-colab.txt`), never torch, torchvision or torchaudio: Colab's builds match its CUDA driver;
# 4. prints the GPU and versions, and creates the Drive layout of `drive_layout.md`.
#
# Outside Colab the same notebook runs against a local folder and skips the Colab-only steps.

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
#@markdown `SMOKE`: nothing heavy happens here; kept for a uniform interface with the other notebooks.
SMOKE = False  #@param {type:"boolean"}

# %% [markdown]
# ## Google Drive
# Mounting asks you to sign in once; it is only attempted inside Colab.

# %%
from fer_lib.colab import describe_runtime, mount_drive
from fer_lib.paths import default_layout

print("Drive mounted" if mount_drive() else "not in Colab: using a local folder instead of Drive")

# %% [markdown]
# ## The runtime
# An A100 (or any Ampere GPU) trains in bf16. Without a GPU everything still runs, slowly: only the
# `tiny` preset is meant for a CPU.

# %%
for key, value in describe_runtime().items():
    print(f"{key:>14}: {value}")

# %% [markdown]
# ## The Drive layout
# One root holds the raw RAVDESS download, the preprocessing cache and every run. Put the
# `Video_Speech_Actor_XX.zip` files (or the unpacked `Actor_XX/` folders) into `ravdess/`.

# %%
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
for name in ("root", "ravdess", "preprocessed", "local"):
    print(f"{name:>12}: {getattr(layout, name)}")
