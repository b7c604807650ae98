"""google.colab.drive over a local folder: mount shows it at the mount point, flush_and_unmount takes it away.

As on Colab: a mounted mount point is a mount point for `os.path.ismount` (with FAKE_COLAB_REAL_MOUNT
a real bind mount of the store, which the test made a tmpfs; else a symlink, and `ismount` is wrapped); after `flush_and_unmount` it is a plain empty folder of the
runtime's disk, where writes would succeed and be lost; mounting over a mount point that holds files
fails ("Mountpoint must not already contain files"), which is how a write into the unmounted folder
shows up in a test.

FAKE_COLAB_DRIVE_DROP scripts a drop mid-run, as JSON {"watch": metrics.json path, "mountpoint": ...,
"unmount_at": N, "mount_at": M}: the first `ismount` check of the mount point after `watch` holds N
rows unmounts Drive, the first after it holds M rows mounts it again (as if Drive came back).

FAKE_COLAB_SIGNAL scripts the end of a runtime at the same kind of moment, as JSON {"watch": metrics.json
path, "rows": N, "signal": "SIGKILL" | "SIGINT"}: the first `ismount` check after `watch` holds N rows
sends the signal to this kernel (SIGKILL: the runtime is gone; SIGINT: the stop button), logged first.
"""

import json
import os
import posixpath
import signal
import subprocess
import time

from google.colab import log

STORE = os.environ.get("FAKE_COLAB_DRIVE", "")
_mounted: set = set()
_real_ismount = posixpath.ismount
_drop = json.loads(os.environ["FAKE_COLAB_DRIVE_DROP"]) if os.environ.get("FAKE_COLAB_DRIVE_DROP") else None
_signal = json.loads(os.environ["FAKE_COLAB_SIGNAL"]) if os.environ.get("FAKE_COLAB_SIGNAL") else None
_real = bool(os.environ.get("FAKE_COLAB_REAL_MOUNT"))


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    mountpoint = posixpath.abspath(os.fspath(mountpoint))
    if mountpoint in _mounted:
        if not force_remount:
            print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
                  f'drive.mount("{mountpoint}", force_remount=True).')
            return
        _unmount(mountpoint)
    if posixpath.isdir(mountpoint) and not posixpath.islink(mountpoint):
        if os.listdir(mountpoint):
            raise ValueError("Mountpoint must not already contain files")
        os.rmdir(mountpoint)
    os.makedirs(posixpath.dirname(mountpoint), exist_ok=True)
    if _real:
        os.mkdir(mountpoint)
        subprocess.run(["mount", "--bind", STORE, mountpoint], check=True)
    else:
        os.symlink(STORE, mountpoint)
    _mounted.add(mountpoint)
    log("mount", mountpoint=mountpoint)
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms=24 * 60 * 60 * 1000):
    for mountpoint in list(_mounted):
        _unmount(mountpoint)
    print("All changes made in this colab session should now be visible in Drive.")


def _unmount(mountpoint):
    if _real:
        subprocess.run(["umount", "-l", mountpoint], check=True)  # what is left: a plain folder of the runtime's disk
    else:
        os.unlink(mountpoint)
        os.mkdir(mountpoint)  # what is left: a plain folder of the runtime's disk
    _mounted.discard(mountpoint)
    log("unmount", mountpoint=mountpoint)


def _rows(path) -> int:
    try:
        with open(path) as handle:
            return len(json.load(handle))
    except (OSError, ValueError):
        return 0


def _ismount(path):
    path = posixpath.abspath(os.fspath(path))
    if _signal is not None and not _signal.get("sent") and _rows(_signal["watch"]) >= _signal["rows"]:
        _signal["sent"] = True
        log("signal", signal=_signal["signal"], time=time.time())
        os.kill(os.getpid(), getattr(signal, _signal["signal"]))
    if _drop is not None and path == _drop["mountpoint"]:
        rows = _rows(_drop["watch"])
        if path in _mounted and rows >= _drop["unmount_at"] and not _drop.get("dropped"):
            _drop["dropped"] = True
            flush_and_unmount()
        elif path not in _mounted and _drop.get("dropped") and rows >= _drop["mount_at"]:
            mount(path)
    return path in _mounted or _real_ismount(path)


posixpath.ismount = _ismount
