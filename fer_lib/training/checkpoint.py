"""Checkpoints: what a run needs to continue exactly, written so that no failure corrupts the last good one.

Layout of one checkpoint folder (`runs/<name>/checkpoints/last/` and `.../best/`):

    model.safetensors     the trainable weights only; frozen pretrained towers are reloaded from their source
    training_state.pt     optimizer, LR scheduler, fp16 grad scaler, RNG states of every process
    trainer_state.json    progress: epoch, optimizer step, batches done in the epoch, best metric,
                          early-stopping counter, the running sums of the unfinished epoch
    config.json           {"model": ModelConfig, "train": TrainConfig}: rebuilds the model
    split.json            the actors of train / val / test, the fold, the preprocessing manifest hash

A folder is self-contained: evaluation and prediction need nothing else (`load_model` rebuilds the
model from it, for inference). Loading reads only safetensors, JSON and
`torch.load(weights_only=True)` (no pickled code runs).

Why this is written here rather than with `Accelerator.save_state`: save_state stores every model
weight (GBs of frozen SigLIP2/Parakeet/LFM2 that are already on the hub), writes straight into the
target folder (a Drive disconnect mid-write leaves it half-written) and keeps RNG states as one
file per rank. Here one process (rank 0) writes, in four steps:

    1. write the folder to the runtime's local disk (a temp dir),
    2. verify it: load every file back and compare tensor names and shapes,
    3. copy it into `checkpoints/` under a temporary name (Drive, in Colab), check the sizes,
    4. swap it in: `last` -> `.last.old`, temp -> `last`, delete `.last.old`.

A failure in steps 1-3 (full disk, failed copy) leaves the previous `last` untouched and raises
CheckpointError. A crash between the two renames of step 4 leaves `.last.old`, which `find`
puts back.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from fer_lib.errors import FerError, one_line

WEIGHTS = "model.safetensors"
STATE = "training_state.pt"
PROGRESS = "trainer_state.json"
CONFIG = "config.json"
SPLIT = "split.json"
FILES = (WEIGHTS, STATE, PROGRESS, CONFIG, SPLIT)


class CheckpointError(FerError):
    """A checkpoint cannot be written or used; the message is one line a person can act on."""


@dataclass
class Checkpoint:
    weights: dict[str, torch.Tensor]
    state: dict  # optimizer, scheduler, scaler (or None), rng: one entry per process
    progress: dict
    config: dict
    split: dict
    path: Optional[Path] = None  # the folder it was loaded from


def save(checkpoint: Checkpoint, run_dir: str | Path, names: tuple[str, ...] = ("last",),
         local_tmp: Optional[str | Path] = None) -> list[Path]:
    """Write `checkpoint` as `run_dir/checkpoints/<name>/` for each name (e.g. "last", "best")."""
    target_root = Path(run_dir) / "checkpoints"
    target_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fer_ckpt_", dir=local_tmp) as tmp:
        local = Path(tmp) / "checkpoint"
        try:
            _write(checkpoint, local)
        except OSError as exc:
            raise CheckpointError(f"cannot write the checkpoint to local disk {tmp}: {exc}") from exc
        _verify(local, checkpoint.weights)
        return [_publish(local, target_root, name) for name in names]


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder; CheckpointError (one line) if it is not a complete one."""
    path = Path(path)
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"not a checkpoint folder: {path} (missing {', '.join(missing)})")
    try:
        return Checkpoint(
            weights=load_file(str(path / WEIGHTS)),
            state=torch.load(path / STATE, map_location="cpu", weights_only=True),
            progress=json.loads((path / PROGRESS).read_text()),
            config=json.loads((path / CONFIG).read_text()),
            split=json.loads((path / SPLIT).read_text()),
            path=path,
        )
    except Exception as exc:  # safetensors, pickle and JSON each raise their own types for a damaged file
        raise CheckpointError(f"damaged checkpoint {path}: {one_line(exc)}") from exc


def find(run_dir: str | Path, name: str = "last") -> Optional[Path]:
    """`run_dir/checkpoints/<name>` if it exists, restoring it from an interrupted swap if needed."""
    root = Path(run_dir) / "checkpoints"
    path, old = root / name, root / f".{name}.old"
    if not path.is_dir() and old.is_dir():
        old.rename(path)
    return path if path.is_dir() else None


def _write(checkpoint: Checkpoint, folder: Path) -> None:
    folder.mkdir(parents=True)
    # safetensors refuses tensors that share memory or are views; trainable weights are plain parameters,
    # but `contiguous().clone()` keeps that true whatever a module does.
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in checkpoint.weights.items()}, str(folder / WEIGHTS))
    torch.save(checkpoint.state, folder / STATE)
    for name, data in ((PROGRESS, checkpoint.progress), (CONFIG, checkpoint.config), (SPLIT, checkpoint.split)):
        (folder / name).write_text(json.dumps(data, indent=2, sort_keys=True))


def _verify(folder: Path, weights: dict[str, torch.Tensor]) -> None:
    loaded = load(folder)
    expected = {k: tuple(v.shape) for k, v in weights.items()}
    if {k: tuple(v.shape) for k, v in loaded.weights.items()} != expected:
        raise CheckpointError(f"checkpoint written to {folder} does not read back the same weights")


def _publish(local: Path, target_root: Path, name: str) -> Path:
    final, old = target_root / name, target_root / f".{name}.old"
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target_root))
    try:
        for file in FILES:
            shutil.copyfile(local / file, staging / file)
            if (staging / file).stat().st_size != (local / file).stat().st_size:
                raise OSError(f"{file} copied incompletely")
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(f"cannot copy the checkpoint into {target_root} ({exc}); the previous {name!r} is kept") from exc
    find(target_root.parent, name)  # finish an earlier interrupted swap before starting this one
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------------
# For inference: a checkpoint or run folder -> the model, ready
# --------------------------------------------------------------------------------------------


def resolve(checkpoint: str | Path) -> Path:
    """The checkpoint folder for a checkpoint folder or a run folder (its `best`, else its `last`)."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if (path / CONFIG).is_file() and (path / WEIGHTS).is_file():
        return path
    for name in ("best", "last"):
        candidate = path / "checkpoints" / name
        if (candidate / CONFIG).is_file():
            return candidate
    raise CheckpointError(f"not a checkpoint: {path} (expected {WEIGHTS} + {CONFIG}, or a run folder "
                          "with checkpoints/best or checkpoints/last)")


def run_dir_of(checkpoint_dir: Path) -> Path:
    """runs/<name>/ for runs/<name>/checkpoints/<ckpt>/; the checkpoint's parent otherwise."""
    return checkpoint_dir.parent.parent if checkpoint_dir.parent.name == "checkpoints" else checkpoint_dir.parent


@dataclass
class TrainedModel:
    """A checkpoint's model, in eval mode on its device, with what it was trained on."""

    model: torch.nn.Module  # EmotionModel
    config: object  # ModelConfig
    split: dict  # split.json: name, train/val/test actors, fold, manifest_hash
    path: Path  # the checkpoint folder
    trained_modalities: str  # the training run's modalities flag: av | a | v


def load_model(checkpoint: str | Path, device=None, allow_other_frozen_weights: bool = False) -> TrainedModel:
    """The model of a checkpoint or run folder (`resolve`), in eval mode on `device` (default cuda when available).

    The model is built from the checkpoint's config (`build_model`), frozen pretrained parts come from
    their source and must be the weights it was trained with (`fer_lib.models.fingerprint`; a
    FrozenWeightsError otherwise, a warning with `allow_other_frozen_weights`), the checkpoint's trainable
    weights are loaded strictly.
    """
    import warnings

    from fer_lib.config import ConfigError, ModelConfig, from_dict
    from fer_lib.models import build_model, fingerprint

    path = resolve(checkpoint)
    loaded = load(path)
    try:
        cfg = from_dict(ModelConfig, loaded.config["model"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path / CONFIG} has no usable model config ({one_line(exc)})") from None
    model = build_model(cfg)
    for line in fingerprint.check(model, loaded.config.get(fingerprint.FIELD), allow_other_frozen_weights):
        warnings.warn(line, stacklevel=2)
    model.load_trainable_state_dict(loaded.weights)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device).eval()
    trained = str((loaded.config.get("train") or {}).get("modalities") or "av")
    return TrainedModel(model, cfg, loaded.split, path, trained)


# --------------------------------------------------------------------------------------------
# RNG states, in types that `torch.load(weights_only=True)` accepts (no numpy arrays)
# --------------------------------------------------------------------------------------------


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
