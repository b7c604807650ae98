"""The hub revision lock: a pretrained part the code does not pin loads the same commit in every run under one root.

`fer_lib.config.REVISIONS` pins a hub commit for each pretrained part where one is known. A part without
a pin (nvidia/parakeet-ctc-0.6b so far) would load whatever the hub serves that day, so two runs of one
user could train on different weights. `pin_revisions(cfg, lock_file)` closes that gap:

- the first load of an unpinned hub id asks the hub which commit it serves now (huggingface_hub; with
  HF_HUB_OFFLINE=1 the local hub cache's `refs/main`), records it in the lock file, and returns the
  config with that commit as the part's revision, so the run's config.json records it too;
- every later load under the same lock file uses the recorded commit, and says so once per call;
- a revision pinned in the code (or in a run's config.json) always wins: it is never written into or
  taken from the lock; a lock file recording another commit for it is a one-line error (runs under
  this root were trained on other weights than the code pins now).

The lock file is `hub_revisions.json` in the folder that holds the run folders (`runs/` of the Drive
layout, on Drive in Colab; `cv/<name>/` for a cross-validation): {hub id: commit}. Local directories
have no revisions and are never recorded.

    lock = Path(save_dir) / LOCK_FILE
    cfg = pin_revisions(cfg, lock)       # before build_model(cfg) and before config.json is written
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable, Iterator, Optional

from fer_lib.config import ModelConfig, is_commit_hash
from fer_lib.errors import FerError, one_line
from fer_lib.fileio import atomic_write_text

LOCK_FILE = "hub_revisions.json"
# (config section, id field, revision field) of every pretrained part a config can load from the hub.
PART_FIELDS = (("audio", "encoder_id", "encoder_revision"), ("visual", "encoder_id", "encoder_revision"),
               ("fusion", "backbone_id", "backbone_revision"))


class HubRevisionError(FerError):
    """The revision lock file cannot be used or disagrees with a pin in the code; the message is one line."""


def hub_parts(cfg: ModelConfig) -> Iterator[tuple[object, str, str]]:
    """(config section, id field, revision field) of each part `cfg` loads from the hub (not a local directory)."""
    for section_name, id_field, revision_field in PART_FIELDS:
        section = getattr(cfg, section_name)
        source = getattr(section, id_field)
        if source is not None and not Path(source).expanduser().is_dir():
            yield section, id_field, revision_field


def pin_revisions(cfg: ModelConfig, lock_file: str | Path, say: Callable[[str], None] = print) -> ModelConfig:
    """A copy of `cfg` in which every hub part has a commit: its pin, else the one `lock_file` records, else the
    one the hub serves now (then recorded in `lock_file`). HubRevisionError on a lock that disagrees with a pin."""
    lock_file = Path(lock_file).expanduser()
    cfg = copy.deepcopy(cfg)
    parts = list(hub_parts(cfg))
    if not parts:
        return cfg
    recorded = read_lock(lock_file)
    used, new = {}, {}
    for section, id_field, revision_field in parts:
        hub_id, pinned = getattr(section, id_field), getattr(section, revision_field)
        if pinned is not None:
            if recorded.get(hub_id, pinned) != pinned:
                raise HubRevisionError(
                    f"{lock_file} records {hub_id} at {recorded[hub_id]}, but the code pins {pinned}: runs under this "
                    f"root used other weights; use another root, or delete the {hub_id} entry to go on with the pin")
            continue
        if hub_id in recorded:
            used[hub_id] = recorded[hub_id]
        else:
            new[hub_id] = current_commit(hub_id)
        setattr(section, revision_field, used.get(hub_id) or new[hub_id])
    if new:
        write_lock(lock_file, {**read_lock(lock_file), **new})  # read again: another run may have added one
        for hub_id, commit in new.items():
            say(f"{hub_id} has no revision pinned in the code: recorded the commit the hub serves now, {commit}, "
                f"in {lock_file}; every later run under it loads the same")
    if used:
        say(f"hub revisions recorded in {lock_file}: " + ", ".join(f"{k} at {v}" for k, v in used.items()))
    return cfg


def read_lock(lock_file: Path) -> dict[str, str]:
    """{hub id: commit} recorded in `lock_file`; {} when there is none; HubRevisionError when it is damaged."""
    try:
        recorded = json.loads(lock_file.read_text())
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise HubRevisionError(f"{lock_file} cannot be read ({one_line(exc)}); restore it, or delete it to record "
                               "the hub's current commits again") from None
    if not isinstance(recorded, dict) or not all(isinstance(k, str) and is_commit_hash(v) for k, v in recorded.items()):
        raise HubRevisionError(f"{lock_file} is not a revision lock ({{hub id: 40-hex commit}}); restore it, or delete "
                               "it to record the hub's current commits again")
    return recorded


def write_lock(lock_file: Path, recorded: dict[str, str]) -> None:
    atomic_write_text(lock_file, json.dumps(dict(sorted(recorded.items())), indent=2) + "\n")


def current_commit(hub_id: str, revision: Optional[str] = None) -> str:
    """The commit the hub serves for `hub_id` now (HF_HUB_OFFLINE=1: the one the local hub cache's ref names),
    fetching only its config.json."""
    from huggingface_hub import snapshot_download

    try:
        snapshot = snapshot_download(hub_id, revision=revision, allow_patterns=["config.json"])
    except (OSError, ValueError) as exc:  # offline and not cached, unknown repo, no network (all OSErrors)
        raise HubRevisionError(f"cannot find which commit of {hub_id} to load ({one_line(exc)}); connect to the "
                               "Hugging Face hub once, or pin a revision in fer_lib.config.REVISIONS") from None
    return Path(snapshot).name
