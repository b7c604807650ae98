"""One process at a time in a folder: a run folder while it trains, a cache while it is built.

    with locking.exclusive(run_dir, "training"):
        ...                                    # a second process here stops at once: FolderInUseError

Two processes writing the same run folder or cache would overwrite each other's checkpoints,
metrics or entries and both exit 0. So the folder holds a lease, `.fer.lock`: a file created
exclusively (O_EXCL, which works on Google Drive as on local disk) holding who holds it, since when,
the lease's duration and the time of its last refresh. The holder rewrites it in place (no new file:
Drive would keep each replaced one in its trash) every quarter of the lease from a background thread.

A holder that died is taken over on the first try of the next process, never after a wait of its own:
- on the same machine at once, when its process id is gone;
- from any machine (a Colab runtime that disconnected: a new runtime is another host) once the lease
  is older than its duration (LEASE_SECONDS), its age judged from the refresh time written into the
  lease and from the file's mtime, whichever is newer. So a clock of the holder's runtime that runs
  behind (or Drive's) does not make a live lease look stale: a live holder refreshes every quarter of
  the lease, and a skew up to three quarters of it is allowed. A refresh time in the future is not
  believed beyond the lease (the mtime decides then).
A live holder is refused, and the message says when it would be taken over if it stopped refreshing.

Why not filelock's SoftFileLease (used before): it takes a lease over only after the acquiring process
has itself watched it unchanged for the lease duration, so `acquire(timeout=0)` never took over a dead
holder on another host, and a new Colab runtime could neither wait nor run.

FER_LEASE_SECONDS overrides the lease duration of the holder (tests use a few seconds); contenders read
the duration from the lease itself.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from fer_lib.errors import FerError

LOCK_NAME = ".fer.lock"
LEASE_SECONDS = 120.0
REFRESHES_PER_LEASE = 4
HOLDER_WAIT_SECONDS = 5.0  # a holder writes its lease milliseconds after creating it (more on a busy machine)


class FolderInUseError(FerError):
    """Another process is working in this folder; the message names it and when it would be taken over."""


def lease_seconds() -> float:
    return float(os.environ.get("FER_LEASE_SECONDS") or LEASE_SECONDS)


@contextmanager
def exclusive(folder: str | Path, purpose: str) -> Iterator[Path]:
    """Hold `folder` (created if missing) for `purpose` ("training", "preprocessing" ...) while the block runs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lease = _Lease(folder / LOCK_NAME, purpose, lease_seconds())
    lease.acquire()
    try:
        yield folder
    finally:
        lease.release()


def holder(folder: str | Path, wait: float = 0.0) -> str:
    """'training (pid 123 on host vm, since 2026-12-03 10:00:00 UTC)', or 'another process' when unreadable.

    `wait`: seconds to give a holder that created the lease a moment ago to write who it is."""
    record = _read(Path(folder) / LOCK_NAME, wait)[0]
    if record is None:
        return "another process"
    return f"{record['purpose']} (pid {record['pid']} on host {record['host']}, since {_utc(record['since'])})"


def is_held(folder: str | Path) -> bool:
    """True while a live process holds `folder` (a dead holder's lease does not count)."""
    path = Path(folder) / LOCK_NAME
    if not path.exists():
        return False
    record, mtime = _read(path, HOLDER_WAIT_SECONDS)
    return mtime is not None and _stale_in(record, mtime) > 0


def _stale_in(record: Optional[dict], mtime: float) -> float:
    """Seconds until the lease is stale (<= 0: stale now, its holder is taken over)."""
    now = time.time()
    if record is None:  # not a lease of ours (or damaged): its mtime and the default duration
        return mtime + LEASE_SECONDS - now
    if record["host"] == socket.gethostname() and not _alive(record["pid"]):
        return 0.0
    duration = float(record["lease_seconds"])
    refreshed = float(record["refreshed"])
    if refreshed > now + duration:  # a clock far ahead: not believed
        refreshed = mtime
    return max(refreshed, mtime) + duration - now


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path, wait: float = 0.0) -> tuple[Optional[dict], Optional[float]]:
    """(the lease's record or None when unreadable, its mtime or None when there is no lease)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            mtime = path.stat().st_mtime
            record = json.loads(path.read_text())
            if {"purpose", "pid", "host", "since", "refreshed", "lease_seconds", "token"} <= set(record):
                return record, mtime
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError, TypeError):
            pass
        if time.monotonic() >= deadline:  # being written (a fresh lease, a refresh), or not ours
            try:
                return None, path.stat().st_mtime
            except FileNotFoundError:
                return None, None
        time.sleep(0.02)


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


class _Lease:
    """The lease file of one holder: created exclusively, refreshed in place, removed on release."""

    def __init__(self, path: Path, purpose: str, duration: float):
        self.path, self.duration = path, duration
        now = time.time()
        self.record = {"purpose": purpose, "pid": os.getpid(), "host": socket.gethostname(), "since": now,
                       "refreshed": now, "lease_seconds": duration, "token": secrets.token_hex(8)}
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def acquire(self) -> None:
        for _ in range(3):  # a stale lease broken by this process (or another contender): create it again
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._break_or_refuse()
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(self.record))
            self.thread = threading.Thread(target=self._refresh_loop, name="fer-lease", daemon=True)
            self.thread.start()
            return
        self._break_or_refuse()  # still taken: by a live contender that won the race, refused below
        raise FolderInUseError(f"{self.path.parent} is in use by {holder(self.path.parent)}")

    def _break_or_refuse(self) -> None:
        record, mtime = _read(self.path, HOLDER_WAIT_SECONDS)
        if mtime is None:
            return  # released meanwhile
        remaining = _stale_in(record, mtime)
        if remaining > 0:
            who = holder(self.path.parent) if record else "another process"
            refreshed = "" if record is None else f", lease refreshed {time.time() - max(record['refreshed'], mtime):.0f} s ago"
            raise FolderInUseError(
                f"{self.path.parent} is in use by {who}{refreshed}; wait until it finishes (or stop it), then run "
                f"the command again. A holder that stopped refreshing its lease (a runtime that disconnected) is "
                f"taken over from {_utc(time.time() + remaining)} (in {remaining:.0f} s)")
        # Stale: move it aside under a name of this contender, and take it only if it is the lease judged stale.
        aside = self.path.with_name(f"{LOCK_NAME}.break.{self.record['token']}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another contender broke it first
        moved = _read(aside)[0]
        if record is not None and (moved is None or moved["token"] != record["token"]):
            try:  # a fresh lease created meanwhile by another contender: put it back
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _refresh_loop(self) -> None:
        while not self.stop.wait(self.duration / REFRESHES_PER_LEASE):
            record = _read(self.path)[0]
            if record is None or record["token"] != self.record["token"]:
                return  # taken over (this process was silent longer than the lease): never write over the new holder
            self.record["refreshed"] = time.time()
            try:
                with open(self.path, "r+") as handle:  # in place: no replaced file in Drive's trash
                    handle.write(json.dumps(self.record))
                    handle.truncate()
            except OSError:  # Drive gone a moment: the next refresh tries again
                pass

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        record = _read(self.path)[0]
        if record is not None and record["token"] == self.record["token"]:
            self.path.unlink(missing_ok=True)
