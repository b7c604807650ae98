"""Checkpoints: what a run needs to continue exactly, written so that no failure corrupts the last good one.

Layout of one checkpoint folder (`runs/<name>/checkpoints/last/` and `.../best/`):

    model.safetensors     the trainable weights only; frozen pretrained towers are reloaded from their source
    training_state.pt     optimizer, LR scheduler, fp16 grad scaler, RNG states of every process
    trainer_state.json    progress: epoch, optimizer step, batches done in the epoch, best metric,
                          early-stopping counter, the running sums of the unfinished epoch
    config.json           {"model": ModelConfig, "train": TrainConfig}: rebuilds the model
    split.json            the actors of train / val / test, the fold, the preprocessing manifest hash
    checksums.json        the sha256 of each file above, checked on every load: a file changed or damaged
                          since it was written (a bit flipped on a disk, a copy cut short) is named, never
                          used; a checkpoint of an earlier fer_lib has none and is read without it

A folder is self-contained: evaluation and prediction need nothing else (`load_model` rebuilds the
model from it, for inference, reading only INFERENCE_FILES). Loading reads only safetensors, JSON and
`torch.load(weights_only=True)` (no pickled code runs).

Inference also takes a model shared on the Hugging Face Hub (`fer_lib.hub` writes and uploads the
folder: INFERENCE_FILES and a model card): `hf://USER/NAME` or `hf://USER/NAME@REVISION` wherever a
checkpoint is accepted. huggingface_hub fetches it into its cache (`HF_HUB_CACHE`; with
`HF_HUB_OFFLINE=1` only from there) as `models--USER--NAME/snapshots/<commit>/`, and what was loaded,
the repository and that commit, goes into every report made from it (`TrainedModel.provenance`).

How one is written, the same on the runtime's disk and on Google Drive:

    checkpoints/
        last/  best/      the checkpoints
        .spare/           the slot the next one is written into: an older checkpoint, or a half-written
                          one after a crash; never read

`save` writes the files into `.spare` and reads them all back (`_verify`); `publish` copies a
checkpoint folder into another `.spare` (the run folder's copy on Drive: drive_sync.py) and checks the
sizes. Then three renames make the spare `last`: `last` -> `.last.retired`, `.spare` -> `last`,
`.last.retired` -> `.spare`. Nothing is ever deleted: on Drive a deleted (or renamed-over) file goes to
the trash and counts against the quota for 30 days, and a run that replaced its checkpoint folder every
epoch filled a free account with trash. A failure before the renames (a full disk, an I/O error, Drive
gone) leaves `last` as it was and raises CheckpointError (one line); a crash between them leaves
`.last.retired`, which the next save or `find` resolves (`_repair`). `clean_staging`, called when
training starts in a run folder it holds, removes what an interrupted write left besides.

Why not `Accelerator.save_state`: it stores every model weight (GBs of frozen SigLIP2/Parakeet/LFM2 that
are already on the hub), writes straight into the target folder (a disconnect mid-write leaves it
half-written) and keeps RNG states as one file per rank. Here one process (rank 0) writes.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fer_lib import devices
from fer_lib.errors import FerError, one_line
from fer_lib.fileio import copy_in_place, stale_temporaries

WEIGHTS = "model.safetensors"
STATE = "training_state.pt"
PROGRESS = "trainer_state.json"
CONFIG = "config.json"
SPLIT = "split.json"
FILES = (WEIGHTS, STATE, PROGRESS, CONFIG, SPLIT)
CHECKSUMS = "checksums.json"
INFERENCE_FILES = (WEIGHTS, CONFIG, SPLIT, PROGRESS)  # what `load_model` reads: a shared model is these files
HUB_PREFIX = "hf://"  # hf://USER/NAME[@REVISION]: a model on the Hugging Face Hub
SPARE = ".spare"
RETIRED = ".retired"  # suffix of a checkpoint renamed away during the three renames
# What a failed write raises: OSError from Python, RuntimeError from torch.save's zip writer, SafetensorError.
WRITE_ERRORS = (OSError, RuntimeError, SafetensorError)


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


def save(checkpoint: Checkpoint, run_dir: str | Path, names: tuple[str, ...] = ("last",)) -> list[Path]:
    """Write `checkpoint` as `run_dir/checkpoints/<name>/` for each name: the first written and read back,
    the others copied from it. The loop passes ("best", "last"), so that `last` never names a newer best
    than `best` holds. Any failure raises CheckpointError, with that name's previous checkpoint kept;
    so do weights holding nan or inf (a diverged run), which are never written."""
    root = Path(run_dir) / "checkpoints"
    name = names[0]
    broken = non_finite(checkpoint.weights)
    if broken:
        raise CheckpointError(f"not saving checkpoint {name!r} in {root}: {broken} (the previous {name!r} is kept); "
                              "the training diverged: lower --lr")
    try:
        _repair(root)
        (root / SPARE).mkdir(parents=True, exist_ok=True)
        _write(checkpoint, root / SPARE)
        _verify(root / SPARE, checkpoint.weights)
        saved = [_rotate(root, name)]
        for name in names[1:]:
            saved.append(publish(saved[0], root, name))
        return saved
    except WRITE_ERRORS as exc:
        raise CheckpointError(f"cannot save checkpoint {name!r} in {root}: {one_line(exc)} "
                              f"(the previous {name!r} is kept)") from exc


def publish(folder: Path, root: Path, name: str) -> Path:
    """Copy the checkpoint `folder` to `root/<name>` through `root`'s spare slot. Raises OSError on failure,
    with `root/<name>` as it was."""
    _repair(root)
    spare = root / SPARE
    spare.mkdir(parents=True, exist_ok=True)
    for file in FILES + (CHECKSUMS,):
        if file == CHECKSUMS and not (folder / file).is_file():  # a checkpoint of an earlier fer_lib
            (spare / file).unlink(missing_ok=True)
        elif copy_in_place(folder / file, spare / file) != (folder / file).stat().st_size:
            raise OSError(f"{spare / file} was copied incompletely")
    return _rotate(root, name)


def load(path: str | Path, files: tuple[str, ...] = FILES) -> Checkpoint:
    """Read a checkpoint folder (`files`: all of them, or INFERENCE_FILES without the training state, then
    `state` is empty); CheckpointError (one line naming the file) if it is not a complete one, or a file in it is
    damaged: changed since it was written (CHECKSUMS), unreadable, or its JSON with values of the wrong type or
    range (`read_progress_file`, `read_config`), or weights that are not finite."""
    path = Path(path)
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"not a fer_lib checkpoint folder: {path} (missing {', '.join(missing)})")
    changed = _changed_files(path, files)
    if changed:
        raise CheckpointError(f"damaged checkpoint {path}: {', '.join(changed)} changed since it was written "
                              f"(its sha256 differs from {CHECKSUMS}); use another checkpoint (best, last), or train "
                              "again")
    readers = {WEIGHTS: lambda file: load_file(str(file)),
               STATE: lambda file: torch.load(file, map_location="cpu", weights_only=True),
               PROGRESS: read_progress_file, CONFIG: read_config, SPLIT: lambda file: json.loads(file.read_text())}
    content = {}
    for name, read in readers.items():
        if name not in files:
            continue
        try:
            content[name] = read(path / name)
        except Exception as exc:  # safetensors, pickle and JSON each raise their own types for a damaged file
            raise CheckpointError(f"damaged checkpoint {path}: {name}: {one_line(exc)}; restore that file from a copy, "
                                  "or use another checkpoint") from exc
    broken = non_finite(content[WEIGHTS])
    if broken:
        raise CheckpointError(f"unusable checkpoint {path}: {broken} (written by a run that diverged); use an "
                              "earlier checkpoint, or train again with a lower --lr")
    return Checkpoint(weights=content[WEIGHTS], state=content.get(STATE, {}), progress=content[PROGRESS],
                      config=content[CONFIG], split=content[SPLIT], path=path)


def non_finite(weights: dict[str, torch.Tensor]) -> str:
    """'nan or inf in 226 of 230 weight tensors (first: ...)' when any weight is not finite; '' otherwise."""
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    return f"nan or inf in {len(bad)} of {len(weights)} weight tensors (first: {bad[0]})" if bad else ""


def read_progress_file(file: Path) -> dict:
    """trainer_state.json: the fields of `Progress` (training/loop.py), of their types and ranges (ConfigError)."""
    from fer_lib.config import from_dict
    from fer_lib.training.loop import Progress

    progress = json.loads(file.read_text())
    from_dict(Progress, progress).validate()
    return progress


def read_config(file: Path) -> dict:
    """config.json: {"model": ModelConfig, "train": TrainConfig, ...}, each value of its field's type (ConfigError)."""
    from fer_lib.config import ConfigError, ModelConfig, TrainConfig, from_dict

    config = json.loads(file.read_text())
    if not isinstance(config, dict):
        raise ConfigError(f"expected a mapping, got {type(config).__name__}")
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        if section in config:
            from_dict(cls, config[section], f"{section}.")
    return config


def load_weights(model, ckpt: Checkpoint) -> None:
    """Load `ckpt`'s trainable weights into `model`, built from `ckpt`'s own config: weights that do not fit it mean
    a damaged checkpoint (a flipped byte in the safetensors header renames a tensor), not another preset."""
    from fer_lib.models import CheckpointMismatchError

    try:
        model.load_trainable_state_dict(ckpt.weights)
    except CheckpointMismatchError as exc:
        raise CheckpointError(f"damaged checkpoint {ckpt.path}: {WEIGHTS} does not match the model of its own {CONFIG} "
                              f"(weights {exc.problems}); restore it from a copy, or use another checkpoint") from None


def find(run_dir: str | Path, name: str = "last") -> Optional[Path]:
    """`run_dir/checkpoints/<name>` if it exists, after finishing a rotation a crash interrupted."""
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        _repair(root)
    return root / name if (root / name).is_dir() else None


def progress_of(folder: Path) -> Optional[tuple[int, int]]:
    """(epoch, batches done) of the checkpoint in `folder`, for ordering two copies; None if there is none."""
    progress = read_progress(folder)
    return None if progress is None else (progress["epoch"], progress["batches_done"])


def read_progress(folder: Path) -> Optional[dict]:
    """The trainer_state.json of the checkpoint in `folder`; None if there is none (or it cannot be read, or is damaged:
    ConfigError is a ValueError)."""
    try:
        return read_progress_file(folder / PROGRESS)
    except (OSError, ValueError):
        return None


def describe_progress(progress: Optional[dict]) -> str:
    """'epoch 3 (step 41)', 'epoch 3 and 5 batches (step 46)' (epochs completed), or 'no checkpoint'."""
    if progress is None:
        return "no checkpoint"
    batches = f" and {progress['batches_done']} batches" if progress.get("batches_done") else ""
    return f"epoch {progress['epoch']}{batches} (step {progress['step']})"


def clean_staging(run_dir: str | Path) -> list[Path]:
    """Remove what interrupted writes left in a run folder; returns what was removed.

    Temporaries of atomic writes (metrics, config; fer_lib.fileio), and the staging folders of the
    earlier checkpoint format (`.last.tmp-*`; its `.last.old` is put back when `last` is missing).
    Call it only while holding the run folder (at the start of training, after its lock): another
    process's save in progress would lose its files.
    """
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    removed = stale_temporaries(run_dir) + stale_temporaries(root)
    for path in removed:
        path.unlink(missing_ok=True)
    if not root.is_dir():
        return removed
    for staging in sorted(root.glob(".*.tmp-*")):
        shutil.rmtree(staging, ignore_errors=True)
        removed.append(staging)
    for old in sorted(root.glob(".*.old")):
        final = root / old.name[1:-len(".old")]
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
        else:
            old.rename(final)
    return removed


def _write(checkpoint: Checkpoint, folder: Path) -> None:
    # safetensors refuses tensors that share memory or are views; trainable weights are plain parameters,
    # but `contiguous().clone()` keeps that true whatever a module does.
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in checkpoint.weights.items()}, str(folder / WEIGHTS))
    torch.save(checkpoint.state, folder / STATE)
    for name, data in ((PROGRESS, checkpoint.progress), (CONFIG, checkpoint.config), (SPLIT, checkpoint.split)):
        (folder / name).write_text(json.dumps(data, indent=2, sort_keys=True))
    # safetensors creates its file readable by its owner only (0600): give it the mode of the other files
    # (0644 under the usual umask), so that whoever can read the checkpoint can read its weights.
    try:
        shutil.copymode(folder / CONFIG, folder / WEIGHTS)
    except OSError:  # a file system without modes (a FUSE mount): there is nothing to give
        pass
    (folder / CHECKSUMS).write_text(json.dumps({name: _sha256(folder / name) for name in FILES}, indent=2))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _changed_files(folder: Path, files: tuple[str, ...] = FILES) -> list[str]:
    """The `files` of `folder` whose sha256 is not the one CHECKSUMS stored (none when there is no CHECKSUMS)."""
    if not (folder / CHECKSUMS).is_file():
        return []
    try:
        stored = json.loads((folder / CHECKSUMS).read_text())
    except (OSError, ValueError):
        return [CHECKSUMS]
    if not isinstance(stored, dict):
        return [CHECKSUMS]
    return [name for name in files if stored.get(name) != _sha256(folder / name)]


def _verify(folder: Path, weights: dict[str, torch.Tensor]) -> None:
    loaded = load(folder)
    expected = {k: tuple(v.shape) for k, v in weights.items()}
    if {k: tuple(v.shape) for k, v in loaded.weights.items()} != expected:
        raise CheckpointError(f"checkpoint written to {folder} does not read back the same weights")


def _rotate(root: Path, name: str) -> Path:
    """Make the complete spare the checkpoint `name`, and the previous `name` the spare: three renames."""
    final, spare, retired = root / name, root / SPARE, root / f".{name}{RETIRED}"
    if final.exists():
        final.rename(retired)
    spare.rename(final)
    if retired.exists():
        retired.rename(spare)
    return final


def _repair(root: Path) -> None:
    """Finish the renames of `_rotate` that a crash interrupted (a `.<name>.retired` folder is left)."""
    for retired in sorted(root.glob(f".*{RETIRED}")):
        final, spare = root / retired.name[1:-len(RETIRED)], root / SPARE
        if not final.exists():  # stopped after the first rename: the spare is the complete new checkpoint
            spare.rename(final)
        if not spare.exists():
            retired.rename(spare)


# --------------------------------------------------------------------------------------------
# For inference: a checkpoint, run folder or hub id -> the model, ready
# --------------------------------------------------------------------------------------------


def resolve(checkpoint: str | Path) -> Path:
    """The checkpoint folder for a checkpoint folder, a run folder (its `best`, else its `last`) or a hub id
    (`hf://USER/NAME[@REVISION]`: its snapshot folder in the hub cache, fetched when missing)."""
    if is_hub_id(checkpoint):
        return download(str(checkpoint))
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


def eval_dir(checkpoint_dir: Path) -> Path:
    """Where evaluations of a checkpoint go by default: runs/<name>/eval/ (beside a bare checkpoint folder:
    eval/), or hub/USER--NAME/eval/ in the working folder for a model from the hub, never the hub cache."""
    hub = hub_source(checkpoint_dir)
    return hub_folder(hub.repo_id) / "eval" if hub else run_dir_of(checkpoint_dir) / "eval"


# ---- models on the Hugging Face Hub ------------------------------------------------------------


@dataclass(frozen=True)
class HubSource:
    """A model on the hub as loaded: its repository and the commit its files came from."""

    repo_id: str  # USER/NAME
    commit: str  # 40 hex

    @property
    def id(self) -> str:
        """hf://USER/NAME@<commit>: loads exactly these files again."""
        return f"{HUB_PREFIX}{self.repo_id}@{self.commit}"


def is_hub_id(checkpoint) -> bool:
    return isinstance(checkpoint, str) and checkpoint.startswith(HUB_PREFIX)


def parse_hub_id(hub_id: str) -> tuple[str, Optional[str]]:
    """("USER/NAME", REVISION or None) of `hf://USER/NAME[@REVISION]`; CheckpointError (one line) otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id, at, revision = hub_id[len(HUB_PREFIX):].partition("@") if is_hub_id(hub_id) else ("", "", "")
    try:
        if repo_id.count("/") != 1 or (at and not revision):
            raise HFValidationError("expected USER/NAME, optionally @REVISION (a branch, tag or commit)")
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise CheckpointError(f"not a hub model id: {hub_id!r}: {one_line(exc)} (e.g. hf://USER/NAME or "
                              "hf://USER/NAME@main)") from None
    return repo_id, revision or None


def hub_folder(repo_id: str) -> Path:
    """hub/USER--NAME: where results made from a model on the hub go (relative: under a root, or the working folder)."""
    return Path("hub") / repo_id.replace("/", "--")


def download(hub_id: str) -> Path:
    """The snapshot folder of `hf://USER/NAME[@REVISION]` in the hub cache: only INFERENCE_FILES are fetched, and
    nothing when the cache has them (huggingface_hub's own resolution: HF_HUB_CACHE, HF_HUB_OFFLINE, HF_TOKEN)."""
    from huggingface_hub import snapshot_download

    repo_id, revision = parse_hub_id(hub_id)
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(INFERENCE_FILES)))
    except (OSError, ValueError) as exc:  # not found, offline and not cached, no access, no network
        raise CheckpointError(f"cannot get {hub_id} from the Hugging Face Hub: {one_line(exc)}") from None


def hub_source(folder: Path) -> Optional[HubSource]:
    """The repository and commit of a snapshot folder of the hub cache (models--USER--NAME/snapshots/<commit>);
    None for any other folder."""
    folder = Path(folder)
    repo = folder.parent.parent.name
    if folder.parent.name != "snapshots" or not repo.startswith("models--") or repo.count("--") != 2:
        return None
    return HubSource(repo[len("models--"):].replace("--", "/"), folder.name)


# ---- the model, ready ---------------------------------------------------------------------------


@dataclass
class TrainedModel:
    """A checkpoint's model, in eval mode on its device, with what it was trained on."""

    model: torch.nn.Module  # EmotionModel
    config: object  # ModelConfig
    split: dict  # split.json: name, train/val/test actors, fold, manifest_hash
    path: Path  # the checkpoint folder
    trained_modalities: str  # the training run's modalities flag: av | a | v
    epoch: Optional[int] = None  # epochs the checkpoint had trained (trainer_state.json)
    hub: Optional[HubSource] = None  # set for a model from the hub

    @property
    def name(self) -> str:
        """What result folders are named after: best | last ..., or USER--NAME@<commit[:7]> for a hub model."""
        return f"{hub_folder(self.hub.repo_id).name}@{self.hub.commit[:7]}" if self.hub else self.path.name

    def provenance(self) -> dict:
        """What every report made from this model records: the checkpoint (hf://USER/NAME@<commit> for a hub
        model) and its epoch; for a hub model also the repository and commit apart."""
        info = {"checkpoint": self.hub.id if self.hub else str(self.path), "checkpoint_epoch": self.epoch}
        if self.hub:
            info.update(hub_repo=self.hub.repo_id, hub_commit=self.hub.commit)
        return info


def load_model(checkpoint: str | Path, device=None, allow_other_frozen_weights: bool = False) -> TrainedModel:
    """The model of a checkpoint folder, run folder or hub id (`resolve`), in eval mode on `device` (default cuda
    when available).

    The model is built from the checkpoint's config (`build_model`), frozen pretrained parts come from
    their source and must be the weights it was trained with (`fer_lib.models.fingerprint`; a
    FrozenWeightsError otherwise, a warning with `allow_other_frozen_weights`), the checkpoint's trainable
    weights are loaded strictly.
    """
    import warnings

    from fer_lib.config import ConfigError, ModelConfig, from_dict
    from fer_lib.models import build_model, fingerprint

    path = resolve(checkpoint)
    loaded = load(path, INFERENCE_FILES)
    try:
        cfg = from_dict(ModelConfig, loaded.config["model"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path / CONFIG} is not a fer_lib model config ({one_line(exc)})") from None
    model = build_model(cfg)
    for line in fingerprint.check(model, loaded.config.get(fingerprint.FIELD), allow_other_frozen_weights):
        warnings.warn(line, stacklevel=2)
    load_weights(model, loaded)
    model.to(devices.resolve(device)).eval()
    trained = str((loaded.config.get("train") or {}).get("modalities") or "av")
    return TrainedModel(model, cfg, loaded.split, path, trained, loaded.progress.get("epoch"), hub_source(path))


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
