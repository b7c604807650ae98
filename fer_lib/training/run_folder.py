"""Run folders: one per training run, named by what defines the run, held by one process at a time,
never taken over by another run.

`runs/<name>/` holds config.json ({"model": ..., "train": ...}) and split.json (actors of each part,
fold, preprocessing manifest hash) from the first moment, then checkpoints and metrics.

The default name is `<preset>_<modalities>_<fixed|foldK>_seed<S>_<hash>`, the hash covering the
run's identity (below) and the checkpoint it started from. So the same command names the same
folder (and continues it), and a changed hyper-parameter names a new one. A name given by the
person (`--run_name`, the notebooks' RUN_NAME) is a folder name: not empty, no path separators.

Identity: the model config and the training config except the fields that only steer a run without
changing what it computes (RUN_CONTROL: e.g. more loader workers, W&B on or off, a larger
`max_epochs` to train further: train.py rebuilds the learning-rate schedule for the new length and
says so). A folder whose config.json has another identity, or whose split.json names other actors or
another preprocessing cache, is refused with a one-line RunConflictError that lists the differences
and the two ways forward: a new run name derived from this one and the change (`lightweight` with
lr 5e-4 -> `lightweight-lr5e-4`), or starting over under this name once the old folder is deleted or
renamed by the person. Earlier results are never mixed with or overwritten by another run's.

One process at a time: `hold(run_dir)` holds the folder while a process trains into it
(`fer_lib.locking`); a second trainer stops at once with one line naming the holder, and the lease of
a holder that died (a crash, a Colab disconnect) is taken over. Folders that `hold` had to create are
removed again when the run leaves them empty (a command refused before its first write leaves nothing).

A run folder's JSON files that cannot be read (truncated, not JSON) are a one-line RunFolderError
saying what to do, never a traceback.

Sync state: `sync_state.json` says how far the run folder is (on Drive, the copy DriveSync keeps):
{"state": "training" | "stopped" | "finished", "trained": progress the training reached, "on_drive":
progress of the folder's `last` (trainer_state.json of each), "updated": when, UTC}. Training writes it
when it starts, after every copy to Drive, and at the end; where Drive is gone it cannot, so a run whose
runtime was lost (or whose Drive never came back) stays "training". `sync_note` reads it for evaluation
and prediction: a run Drive may hold only in part ("training" and no live holder, or still training) is
refused by the commands unless `--allow_incomplete`, and said on screen and in the report otherwise;
a stopped run is said, not refused (Drive holds all it trained). A run folder without the file (written
before it existed) says nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from fer_lib import colab, locking
from fer_lib.config import ConfigError, ModelConfig, TrainConfig, from_dict, to_dict
from fer_lib.errors import FerError, one_line
from fer_lib.fileio import atomic_write_text

RUN_CONTROL = ("max_epochs", "early_stopping_patience", "num_workers", "use_wandb", "wandb_project",
               "checkpoint_every_steps", "resume_from")
SYNC_STATE = "sync_state.json"
MAX_NAMED_CHANGES = 3  # a derived run name spells out at most this many changes, else a hash stands for them


class RunFolderError(FerError):
    """A run folder or its name cannot be used; the message is one line."""


class RunConflictError(RunFolderError):
    """The run folder belongs to another run; the message lists the differences and the ways forward."""


class IncompleteRunError(RunFolderError):
    """The run folder holds only part of its run (Drive behind the training, or training not over)."""


def resolved_config(model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict:
    # A JSON round trip turns tuples into lists, as they will be when read back from config.json.
    return json.loads(json.dumps({"model": to_dict(model_cfg), "train": to_dict(train_cfg)}))


def identity(config: dict) -> dict:
    return {"model": config["model"], "train": {k: v for k, v in config["train"].items() if k not in RUN_CONTROL}}


def default_run_name(config: dict) -> str:
    train = config["train"]
    split = "fixed" if train["fold"] is None else f"fold{train['fold']}"
    return f"{config['model']['preset']}_{train['modalities']}_{split}_seed{train['seed']}_{_digest(config)}"


def path(save_dir: str | Path, run_name: Optional[str], config: dict) -> Path:
    """`save_dir/<run_name>`, or `save_dir/<default_run_name>` when run_name is None or empty."""
    name = check_name(str(run_name) if run_name else default_run_name(config))
    return Path(save_dir).expanduser() / name


def check_name(name: str, what: str = "run name", example: str = "lightweight-lr5e-4") -> str:
    """`name` when it is one folder name (no path: nothing written outside its parent); RunFolderError otherwise.
    The one check of every name a command makes a folder of (train's --run_name, cv's --name)."""
    if name.strip() in ("", ".", "..") or re.search(r"[/\\\0]", name):
        raise RunFolderError(f"{what} {name!r} is not a folder name: use letters, digits, '-', '_' or '.' "
                             f"(no '/'), e.g. {example!r}")
    return name


@contextmanager
def hold(run_dir: Path) -> Iterator[Path]:
    """Hold `run_dir` for training while the block runs (`locking.exclusive`); FolderInUseError (one line,
    naming the holder) when a live process holds it. Folders created here are removed if left empty."""
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        with locking.exclusive(run_dir, "training"):
            yield run_dir
    finally:
        for folder in created:  # deepest first; stops at the first one the run (or anyone) wrote into
            try:
                folder.rmdir()
            except OSError:
                break


def read_json(path: Path, what_to_do: str):
    """The content of a run folder's JSON file, None if it does not exist; RunFolderError if it is damaged."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path} is damaged ({one_line(exc)}); {what_to_do}") from None


def check(run_dir: Path, config: dict, split: dict) -> None:
    """Raise RunConflictError if `run_dir` holds a run with another identity, split or cache (module docstring)."""
    changes = _conflicts(run_dir, config, split)
    if changes:
        shown = "; ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes[:MAX_NAMED_CHANGES])
        more = f" and {len(changes) - MAX_NAMED_CHANGES} more" if len(changes) > MAX_NAMED_CHANGES else ""
        new_name = suggest_name(run_dir, config, split, changes)
        raise RunConflictError(
            f"run folder {run_dir} holds a run with other settings ({shown}{more}), and resuming needs the same "
            f"settings. Either train these settings as a new run: run name '{new_name}' (--run_name / RUN_NAME), "
            f"or start over under this name: delete or rename {run_dir} first"
        )


def suggest_name(run_dir: Path, config: dict, split: dict, changes: list[tuple[str, object, object]]) -> str:
    """A run name for the changed settings, derived from `run_dir`'s: `lightweight` + lr 5e-4 -> `lightweight-lr5e-4`;
    with more than MAX_NAMED_CHANGES changes, a hash of the new settings. The first such name that is free
    (or holds exactly this run) in the same parent folder."""
    if len(changes) <= MAX_NAMED_CHANGES:
        suffix = "-".join(_name_token(key.rsplit(".", 1)[-1], new) for key, _, new in changes)
    else:
        suffix = _digest(config)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{run_dir.name}-{suffix}")
    for k in range(1, 100):
        candidate = run_dir.parent / (base if k == 1 else f"{base}-{k}")
        try:
            if not _conflicts(candidate, config, split):
                break
        except RunFolderError:  # a damaged folder of that name: not this one
            continue
    return candidate.name


def write(run_dir: Path, config: dict, split: dict) -> None:
    for name, data in (("config.json", config), ("split.json", split)):
        atomic_write_text(run_dir / name, json.dumps(data, indent=2, sort_keys=True))


def _conflicts(run_dir: Path, config: dict, split: dict) -> list[tuple[str, object, object]]:
    """(key, recorded, asked for) for every setting in which `run_dir`'s run differs from this one; [] if none."""
    changes = []
    for name, mine in (("config.json", identity(config)), ("split.json", split)):
        copy = run_dir / "checkpoints" / "last" / name
        fix = (f"restore it from the copy {copy}" if copy.is_file() else "delete it (the run has no checkpoint yet)")
        theirs = read_json(run_dir / name, f"{fix}, or choose another run name")
        if theirs is None:
            continue
        if not isinstance(theirs, dict) or (name == "config.json" and not {"model", "train"} <= set(theirs)):
            raise RunFolderError(f"{run_dir / name} is damaged (not a run's {name}); {fix}, or choose another run name")
        if name == "config.json":  # a value of the wrong type ("lr": "1e-4") is damage, not another setting
            try:
                from_dict(ModelConfig, theirs["model"], "model.")
                from_dict(TrainConfig, theirs["train"], "train.")
            except ConfigError as exc:
                raise RunFolderError(f"{run_dir / name} is damaged ({exc}); {fix}, or choose another run name") from None
        changes += _differences(identity(theirs) if name == "config.json" else theirs, mine,
                                "" if name == "config.json" else "split.")
    return changes


def _differences(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out


def _digest(config: dict) -> str:
    payload = json.dumps({**identity(config), "resume_from": config["train"]["resume_from"]}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:6]


def _name_token(field: str, value) -> str:
    """'lr5e-4', 'batch_size16', 'augment', 'no-augment', 'modalities-a': one changed setting in a run name."""
    if isinstance(value, bool):
        return field if value else f"no-{field}"
    if isinstance(value, float):
        mantissa, exponent = f"{value:e}".split("e")
        scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return field + min(f"{value:g}", scientific, key=len)
    if isinstance(value, int):
        return f"{field}{value}"
    if isinstance(value, (list, tuple)):
        return f"{field}-{'-'.join(map(str, value))}"
    return f"{field}-{str(value)[:8]}"


# --------------------------------------------------------------------------------------------
# Sync state (module docstring)
# --------------------------------------------------------------------------------------------


def record_sync(run_dir: Path, state: str, trained: Optional[dict], on_drive: Optional[dict]) -> bool:
    """Write `run_dir/sync_state.json`; False (nothing written) when `run_dir` is on a Drive that is gone."""
    try:
        colab.check_mounted(run_dir)
        atomic_write_text(run_dir / SYNC_STATE, json.dumps({
            "state": state, "trained": trained, "on_drive": on_drive,
            "updated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}, indent=2, sort_keys=True))
    except (OSError, colab.ColabError):
        return False
    return True


@dataclass
class SyncNote:
    """What a command using one of the run's checkpoints says about the run's sync state."""

    line: str  # on screen
    short: str  # in the report's subtitle
    incomplete: bool  # Drive may hold only part of what training reached: refused without allow_incomplete


def sync_note(checkpoint_dir: Path) -> Optional[SyncNote]:
    """The note for using `checkpoint_dir` (runs/<name>/checkpoints/<which>), None for a finished run (or a
    folder that is not a run folder, or one written before sync states existed)."""
    from fer_lib.training import checkpoint

    run_dir = checkpoint.run_dir_of(checkpoint_dir)
    try:
        record = json.loads((run_dir / SYNC_STATE).read_text())
        state, trained = record["state"], checkpoint.describe_progress(record["trained"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state == "finished":
        return None
    used = f"this is its {checkpoint_dir.name} checkpoint, {checkpoint.describe_progress(checkpoint.read_progress(checkpoint_dir))}"
    on_drive = checkpoint.describe_progress(checkpoint.read_progress(run_dir / "checkpoints" / "last"))
    if state == "stopped":
        return SyncNote(f"run {run_dir.name} was stopped at {trained} before its end (run its training again to "
                        f"continue); {used}", f"stopped run: trained to {trained}, using {checkpoint_dir.name}", False)
    if locking.is_held(run_dir):
        why = f"is still training (by {locking.holder(run_dir)}); its folder holds {on_drive} so far"
    else:
        why = (f"did not finish: its folder holds {on_drive}, and training reached at least {trained} (as of "
               f"{record.get('updated', '?')}) on a runtime that was lost or lost Drive, so it may have got further")
    return SyncNote(f"run {run_dir.name} {why}; {used}",
                    f"incomplete run: folder holds {on_drive}, using {checkpoint_dir.name}", True)


def check_synced(checkpoint_dir: Path, allow_incomplete: bool) -> Optional[SyncNote]:
    """`sync_note`, or IncompleteRunError for an incomplete run unless `allow_incomplete`."""
    note = sync_note(checkpoint_dir)
    if note is not None and note.incomplete and not allow_incomplete:
        raise IncompleteRunError(f"{note.line}. Finish it first (run 03, or the same training command, again: it "
                                 "continues and copies the run to Drive), or pass --allow_incomplete "
                                 "(allow_incomplete=True) to use what the folder holds")
    return note
