"""A run folder on Google Drive, kept up to date from its working copy on the runtime's local disk.

Why: a `lightweight` checkpoint is about 0.36 GB (trainable weights and AdamW state), and writing one
to Drive every epoch, replacing the one before, pushed the replaced ones into Drive's trash, where
they count against the quota for 30 days. So in Colab training writes its run folder to local disk
(`/content/fer_local/runs/<name>/`: a checkpoint every epoch, metrics, curves), and `DriveSync`
copies it to the run folder on Drive (`MyDrive/fer/runs/<name>/`):

- after a checkpoint, when the next checkpoint would come more than `every_minutes` (default 10)
  after the last copy; so a disconnect loses at most that many minutes of training;
- at the end of training (`finish`), and at its start when the working copy is ahead of Drive;
- in place under stable names: small files (metrics, curves, config) through an atomic copy when
  they changed, then `best` when it changed and `last` through `checkpoint.publish` (a spare slot and
  three renames: nothing is deleted). In this order, a copy cut short leaves Drive's metrics and best
  ahead of its `last`, which resuming redoes or cuts back (training/logging.py), never behind it.

Drive can go away mid-run (fer_lib/colab.py): before each copy the mount is checked, and errno 107
counts the same. Training then goes on locally; every epoch says loudly how to remount and that the
run will be copied to Drive when it is back, and it is copied at the first checkpoint after that
(or when the same training is started again after remounting). Any other failed copy (Drive full)
is said once per epoch too, and retried at the next checkpoint; Drive keeps its previous complete
copy meanwhile.

The run folder on Drive records its sync state (run_folder.py, `sync_state.json`): after every copy,
as "training", and train.py records "finished" or "stopped" at the end. A final copy that fails
leaves it as it was, and `failure` says why, for train.py's one-line error.

Where a run resumes from (`start`): the working copy is empty in a fresh runtime, and Drive's run
folder is copied into it; in the runtime that trained it, it may be ahead of Drive (Drive was gone),
and it is kept. A run folder that is new on Drive discards a stale working copy of the same name.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable, Optional

from fer_lib import colab, show
from fer_lib.errors import FerError, one_line
from fer_lib.fileio import atomic_copy
from fer_lib.training import checkpoint, run_folder

class DriveBehindError(FerError):
    """Training ended, but the run folder on Drive does not hold all of it; the message says what to do."""


CHECKPOINTS = ("best", "last")  # in this order: `last` never names a newer best than `best` holds


class DriveSync:
    def __init__(self, work_dir: Path, drive_dir: Path, every_minutes: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, warn: Callable[[str], None] = show.warning):
        self.work_dir, self.drive_dir = Path(work_dir), Path(drive_dir)
        self.every_s = every_minutes * 60
        self.clock, self.warn = clock, warn
        self.fresh = not (self.drive_dir / "config.json").is_file()  # decided before training writes it there
        self.copied: dict[Path, tuple[int, int]] = {}  # small file -> (size, mtime) of the working copy when copied
        self.last_copy = self.last_save = clock()
        self.behind = False  # a due copy failed or Drive was gone: copy at the next chance
        self.warned: set[Optional[int]] = set()  # epochs whose failed copy was reported
        self.failure: Optional[str] = None  # what the last failed copy said
        self.on_drive: Optional[dict] = None  # the progress of Drive's `last` when Drive was last seen
        self.started = False

    def start(self) -> None:
        """Prepare the working copy (see the module docstring); copy it to Drive at once when it is ahead."""
        if self.fresh and self.work_dir.exists():
            shutil.rmtree(self.work_dir)
        self.on_drive = checkpoint.read_progress(self.drive_dir / "checkpoints" / "last")
        drive = checkpoint.progress_of(self.drive_dir / "checkpoints" / "last")
        work = checkpoint.progress_of(self.work_dir / "checkpoints" / "last")
        if drive is not None and (work is None or drive > work):
            self._pull()
        elif work is not None and (drive is None or work > drive):
            self.behind = True
            self.copy(epoch=None)
        self.record("training")
        self.last_copy = self.last_save = self.clock()
        self.started = True

    def after_save(self, epoch: int) -> None:
        """After each checkpoint of the working copy: copy it when due (`epoch`: 0-based, for the messages)."""
        now = self.clock()
        next_save = now + (now - self.last_save)  # the next checkpoint comes about as long after this one
        self.last_save = now
        if self.behind or next_save - self.last_copy > self.every_s:
            self.copy(epoch)

    def finish(self) -> bool:
        """Copy what is not on Drive yet; True when Drive has the whole run (else `failure` says why)."""
        return self.copy(epoch=None, final=True)

    def copy(self, epoch: Optional[int], final: bool = False) -> bool:
        """Copy the working copy's changes to Drive now; on failure say so (once per epoch; `final`: only in
        `failure`, for the caller's error) and return False."""
        try:
            colab.check_mounted(self.drive_dir)
            self._push()
        except (OSError, colab.ColabError) as exc:
            self.behind = True
            self.failure = self._failure(exc, final)
            if not final and epoch not in self.warned:
                self.warned.add(epoch)
                self.warn(self.failure)
            return False
        self.behind = False
        self.last_copy = self.clock()
        self.on_drive = checkpoint.read_progress(self.drive_dir / "checkpoints" / "last")
        self.record("training")
        return True

    def progress(self) -> tuple[Optional[dict], Optional[dict]]:
        """The progress of the working copy's `last` and of Drive's when Drive was last seen (None: no checkpoint)."""
        return checkpoint.read_progress(self.work_dir / "checkpoints" / "last"), self.on_drive

    def record(self, state: str) -> bool:
        """Write the sync state of the run folder on Drive (False when Drive is gone)."""
        return run_folder.record_sync(self.drive_dir, state, *self.progress())

    def _push(self) -> None:
        for path in self._small_files():
            stat = path.stat()
            if self.copied.get(path) != (stat.st_size, stat.st_mtime_ns):
                atomic_copy(path, self.drive_dir / path.relative_to(self.work_dir))
                self.copied[path] = (stat.st_size, stat.st_mtime_ns)
        for name in CHECKPOINTS:
            local, remote = self.work_dir / "checkpoints" / name, self.drive_dir / "checkpoints" / name
            if local.is_dir() and _progress_text(local) != _progress_text(remote):
                checkpoint.publish(local, self.drive_dir / "checkpoints", name)

    def _pull(self) -> None:
        """Drive's run folder (its files and `last`) into the working copy."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.drive_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.name != run_folder.SYNC_STATE:
                local = atomic_copy(path, self.work_dir / path.name)
                self.copied[local] = (local.stat().st_size, local.stat().st_mtime_ns)
        checkpoint.publish(self.drive_dir / "checkpoints" / "last", self.work_dir / "checkpoints", "last")

    def _small_files(self) -> list[Path]:
        """Every file of the working copy but the checkpoints and hidden ones (locks, temporaries)."""
        return [path for path in sorted(self.work_dir.rglob("*"))
                if path.is_file() and path.relative_to(self.work_dir).parts[0] != "checkpoints"
                and not any(part.startswith(".") for part in path.relative_to(self.work_dir).parts)]

    def _failure(self, exc: Exception, final: bool) -> str:
        where = f"the run is on this runtime's disk, in {self.work_dir}"
        if isinstance(exc, colab.ColabError) or (isinstance(exc, OSError) and colab.drive_gone(exc)):
            if final:
                return (f"Google Drive is not mounted: {where}, and is lost with the runtime unless it is copied. "
                        f"Remount Drive ({colab.REMOUNT}), then run this training again: it copies the run to "
                        f"{self.drive_dir} and trains nothing twice.")
            return (f"Google Drive is not mounted (or disconnected): training goes on, checkpoints are kept on "
                    f"this runtime's disk ({self.work_dir}), and the run will be copied to {self.drive_dir} when "
                    f"Drive is back. To remount: stop this cell, run `{colab.REMOUNT}`, then run this cell "
                    "again; it resumes from the local checkpoint and copies the run.")
        then = "run this training again to copy it" if final else "training goes on, and the next checkpoint tries again"
        return (f"could not copy the run to {self.drive_dir} ({one_line(exc)}); {where}: {then}. "
                "Drive keeps its previous complete copy.")


def _progress_text(folder: Path) -> Optional[str]:
    try:
        return (folder / checkpoint.PROGRESS).read_text()
    except OSError:
        return None
