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
