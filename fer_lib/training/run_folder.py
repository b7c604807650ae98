"""Run folders: one per training run, named by what defines the run, never taken over by another run.

`runs/<name>/` holds config.json ({"model": ..., "train": ...}) and split.json (actors of each part,
fold, preprocessing manifest hash) from the first moment, then checkpoints and metrics.

The default name is `<preset>_<modalities>_<fixed|foldK>_seed<S>_<hash>`, the hash covering the
run's identity (below) and the checkpoint it started from. So the same command names the same
folder (and continues it), and a changed hyper-parameter names a new one.

Identity: the model config and the training config except the fields that only steer a run without
changing what it computes (RUN_CONTROL: e.g. a larger `max_epochs` to train further, more loader
workers, W&B on or off). A folder whose config.json has another identity, or whose split.json names
other actors or another preprocessing cache, is refused with a one-line RunConflictError that
lists the differences: earlier results are never mixed with or overwritten by another run's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fer_lib.config import ModelConfig, TrainConfig, to_dict
from fer_lib.errors import FerError
from fer_lib.fileio import atomic_write_text

RUN_CONTROL = ("max_epochs", "early_stopping_patience", "num_workers", "use_wandb", "wandb_project",
               "checkpoint_every_steps", "resume_from")


class RunConflictError(FerError):
    """The run folder belongs to another run; the message is one line."""


def resolved_config(model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict:
    # A JSON round trip turns tuples into lists, as they will be when read back from config.json.
    return json.loads(json.dumps({"model": to_dict(model_cfg), "train": to_dict(train_cfg)}))


def identity(config: dict) -> dict:
    return {"model": config["model"], "train": {k: v for k, v in config["train"].items() if k not in RUN_CONTROL}}


def default_run_name(config: dict) -> str:
    train = config["train"]
    payload = json.dumps({**identity(config), "resume_from": train["resume_from"]}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:6]
    split = "fixed" if train["fold"] is None else f"fold{train['fold']}"
    return f"{config['model']['preset']}_{train['modalities']}_{split}_seed{train['seed']}_{digest}"


def check(run_dir: Path, config: dict, split: dict) -> None:
    """Raise RunConflictError if `run_dir` holds a run with another identity, split or cache."""
    for name, mine, theirs in (("config", identity(config), _read(run_dir / "config.json", identity)),
                               ("split", split, _read(run_dir / "split.json", lambda s: s))):
        if theirs is not None and theirs != mine:
            changes = _differences(theirs, mine)
            raise RunConflictError(
                f"{run_dir} holds another run ({name}: {'; '.join(changes[:3])}{' ...' if len(changes) > 3 else ''}); "
                "choose another --run_name, or leave it out to get a folder named after this config"
            )


def write(run_dir: Path, config: dict, split: dict) -> None:
    for name, data in (("config.json", config), ("split.json", split)):
        atomic_write_text(run_dir / name, json.dumps(data, indent=2, sort_keys=True))


def _read(path: Path, view):
    return view(json.loads(path.read_text())) if path.is_file() else None


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out
