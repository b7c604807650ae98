"""Writing a file so that a reader (or a Drive sync) never sees it half-written: the one way fer_lib does it.

    with atomic_file(path, "w", newline="") as handle:   # any writer: csv, np.savez, Figure.savefig ...
        ...
    atomic_write_text(path, text)
    atomic_copy(src, dst)

The data goes to a hidden temporary file in the same folder (`.<name>.<pid>.tmp`), which replaces
`path` in one rename once it is complete and closed. A failure (a full disk, an exception in the
`with` block) deletes the temporary file and leaves `path` as it was; an OSError that names no file
(a full disk reports none) is raised again naming `path`, so the command's one line says where. A
process killed mid-write leaves only its temporary file behind; `stale_temporaries` finds those for
clean-up.

`check_writable(folder)` is asked before long work whose results go to `folder` (an evaluation, a
prediction): a folder that cannot be created or written, or a full disk, stops the command at once
rather than after the work.

The one exception is `copy_in_place`, for big files on Google Drive: a file replaced by a rename is
deleted there, and a deleted file stays in Drive's trash, counted against the quota, for 30 days.
It rewrites the target's bytes instead, so it is only for a file that no reader opens while it is
written: a checkpoint's spare slot (fer_lib/training/checkpoint.py).
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

TMP_SUFFIX = ".tmp"
COPY_CHUNK = 16 * 2**20  # bytes per read and write of a copy


def temporary_path(path: Path) -> Path:
    """The hidden temporary name `path` is written under by this process."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; rename it over `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_file(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_file(path, "wb") as handle:
        handle.write(data)
    return Path(path)


MIN_FREE_BYTES = 1 << 20  # a result folder's JSON, CSV and PNG files take a few hundred kB


def check_writable(folder: str | Path) -> Path:
    """Raise an OSError naming the path unless files can be written into `folder` (created later if missing):
    its nearest existing ancestor must be a writable folder on a file system with MIN_FREE_BYTES free.
    Creates nothing; returns `folder` (user-expanded)."""
    folder = Path(folder).expanduser()
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a folder, so nothing can be written inside it", str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Cannot write here (permission denied or a read-only file system)",
                              str(existing))
    stats = os.statvfs(existing)
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        raise OSError(errno.ENOSPC, "No space left on device", str(existing))
    return folder


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy the file `src` to `dst` atomically (a reader of `dst` sees the old or the new file, never half)."""
    with open(src, "rb") as reader, atomic_file(dst, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_CHUNK)
    return Path(dst)


def copy_in_place(src: str | Path, dst: str | Path) -> int:
    """Rewrite the file `dst` (created if missing) with the bytes of `src`; returns the bytes `dst` now holds.

    No temporary file and no rename, so nothing is deleted (see the module docstring); `dst` is
    half-written until this returns, so nothing may read it meanwhile.
    """
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_CHUNK)
        return writer.tell()


def stale_temporaries(folder: str | Path) -> list[Path]:
    """The temporary files `atomic_file` left in `folder` (not below it) when a process died mid-write."""
    folder = Path(folder)
    return sorted(folder.glob(f".*{TMP_SUFFIX}")) if folder.is_dir() else []
