# %% [markdown]
# # 00 · Setup: Drive, code, packages
#
# Run this once per fresh Colab runtime (**Runtime → Run all**). It
# 1. mounts Google Drive, where everything that must survive a disconnect lives;
# 2. fetches this repository into `/content/fer_lib` and puts it on `sys.path` — no editable
#    install, so no runtime restart is needed;
# 3. installs only what Colab lacks (`requirements-colab.txt`), never torch, torchvision or
#    torchaudio: Colab's builds match its CUDA driver;
# 4. prints the GPU and versions, and creates the Drive layout of `drive_layout.md`.
#
# Outside Colab the same notebook runs against a local folder and skips the Colab-only steps.

# %%
import subprocess, sys
if "google.colab" in sys.modules:  # fresh Colab runtime: fetch the code, importable without a restart
    subprocess.run("git -C /content/fer_lib pull -q || git clone -q --depth 1 https://github.com/OWNER/REPO /content/fer_lib", shell=True, check=True)  # OWNER/REPO: placeholder
    sys.path.insert(0, "/content/fer_lib")
    from fer_lib.colab import install_requirements; install_requirements()

# %% tags=["parameters"]
ROOT = None  # Drive root of drive_layout.md; None = MyDrive/fer in Colab, ./demo_out elsewhere
LOCAL = None  # the runtime's fast disk for hot copies; None = /content/fer_local in Colab
SMOKE = False  # nothing heavy happens here; kept for a uniform interface with the other notebooks

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
