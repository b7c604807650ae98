# %% [markdown]
# # 02 · Model smoke test: build a preset, check it before spending GPU hours
#
# This notebook builds the chosen preset, prints its parameter table and a training-memory estimate,
# and runs one forward and backward pass on a real batch from the cache in all three modality modes:
# audio only, visual only, and both — the same weights serve all three. It ends by showing which
# patch tokens the landmark-guided ROI compression keeps on a face.
#
# Presets: `tiny` (small random-init backbones, CPU), `lightweight` (pretrained SigLIP2 and FastConformer,
# frozen, small LFM2), `full` (plus pretrained LFM2-700M). The pretrained ones download from the
# Hugging Face hub the first time.

# %%
import subprocess, sys
if "google.colab" in sys.modules:  # fresh Colab runtime: fetch the code, importable without a restart
    subprocess.run("git -C /content/fer_lib pull -q || git clone -q --depth 1 https://github.com/OWNER/REPO /content/fer_lib", shell=True, check=True)  # OWNER/REPO: placeholder
    sys.path.insert(0, "/content/fer_lib")
    from fer_lib.colab import install_requirements; install_requirements()
# %% tags=["parameters"]
ROOT = None  # Drive root of drive_layout.md; None = MyDrive/fer in Colab, ./demo_out elsewhere
LOCAL = None  # the runtime's fast disk for hot copies; None = /content/fer_local in Colab
PRESET = "lightweight"  # tiny | lightweight | full
BATCH_SIZE = 8  # for the memory estimate (the smoke batch itself is 2 clips)
SMOKE = False  # True: the tiny preset on synthetic clips, so the notebook runs anywhere

# %%
import torch

from fer_lib import demo, show
from fer_lib.colab import mount_drive
from fer_lib.config import get_preset
from fer_lib.data import cache
from fer_lib.data.dataset import RavdessDataset, collate
from fer_lib.models import build_model, smoke
from fer_lib.models.sizes import estimate_training_memory, format_parameter_table, parameter_table
from fer_lib.paths import default_layout

mount_drive()
layout = default_layout(ROOT, LOCAL, smoke=SMOKE).create()
if SMOKE:
    PRESET = "tiny"
    demo.ensure_cache(layout)  # synthetic clips and their cache, made only where missing
device = "cuda" if torch.cuda.is_available() else "cpu"

# %% [markdown]
# ## Parameters and memory
# Frozen encoders count in the total but not in the trainable column: their outputs can be cached once
# (the embedding cache), so each epoch only runs the trainable parts. The memory figure is an analytical
# estimate (weights, gradients, AdamW states, activations), not a measurement.

# %%
config = get_preset(PRESET)
model = build_model(config).to(device)
print(format_parameter_table(parameter_table(model)))
memory = estimate_training_memory(model, BATCH_SIZE, "bf16")
print(f"\nestimated training memory at batch {BATCH_SIZE}, bf16: {memory['total'] / 1024**3:.2f} GB")

# %% [markdown]
# ## Forward and backward in all three modes
# A missing modality is replaced by a learned "missing" token in the fusion, so the other branch's
# output does not change. The loss must be finite and gradients must reach the trainable parts.

# %%
cache_dir = layout.local_preprocessed if cache.is_cache(layout.local_preprocessed) else layout.preprocessed
dataset = RavdessDataset(cache_dir)
batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate([dataset[0], dataset[1]]).items()}
print(smoke.format_rows(smoke.forward_backward(model, batch)))

# %% [markdown]
# ## The tokens ROI compression keeps
# Of the 196 patch tokens SigLIP2 gives per frame, 68 are kept: a coarse grid of context tokens plus the
# tokens nearest to the eyes, brows, nose and mouth corners (the landmarks from preprocessing).

# %%
show.roi_tokens(model, batch)
