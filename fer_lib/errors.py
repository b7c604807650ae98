"""The one error base of fer_lib, and the one-line form every command prints.

Every error a person can act on (a wrong flag value, a missing folder, a foreign checkpoint, a cache
built with other parameters ...) is a `FerError`. Each concept keeps its own subclass beside it
(`ConfigError` in config.py, `DataError` in data/index.py, `CheckpointError` in
training/checkpoint.py, ...), so a reader finds the error next to what it is about, and the commands
catch them all as one type (`fer_lib.cli.run`). Anything else is a bug and keeps its traceback.

A FerError's message is one line that says what is wrong and what to do. In a notebook (Colab,
Jupyter, VS Code, papermill) it shows as that line, not as a traceback, and the cell still fails, so
Run All stops there.
"""

from __future__ import annotations

import errno
from typing import Optional


class FerError(ValueError):
    """A problem with the input or the environment that a person can fix; the message is one line.

    A ValueError, as every one of these errors was before they shared this base, so that code catching
    ValueError around fer_lib calls keeps working."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows in place of the traceback: the error's one line, its name in red."""
        return _one_line_traceback(self)


class Stopped(KeyboardInterrupt):
    """Work stopped by the person (Ctrl-C, a notebook's stop button) or a scheduler (SIGTERM); the message is
    one line saying where things stand and how to continue. A KeyboardInterrupt, so that whatever stops on
    Ctrl-C stops on it; the commands exit 130 (fer_lib.cli), a notebook shows the line, not a traceback."""

    _render_traceback_ = FerError._render_traceback_


def _one_line_traceback(exc: BaseException) -> list[str]:
    return [f"\x1b[1;31m{type(exc).__name__}\x1b[0m: {one_line(exc)}"]


def one_line(exc: BaseException) -> str:
    """The exception's text with line breaks and runs of spaces collapsed to single spaces
    (library messages, e.g. transformers' or torch's, often span several lines). An error raised in a
    DataLoader worker comes back as "Caught X in DataLoader worker ... Original Traceback ...", its own
    message last: that message alone."""
    text = str(exc)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.rstrip().splitlines()[-1]  # "fer_lib.data.cache.DamagedShardError: damaged cache shard ..."
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


def describe_os_error(exc: OSError) -> str:
    """'No space left on device: /content/drive/...' and the like, one line."""
    what = exc.strerror or one_line(exc)
    where = f": {exc.filename}" if exc.filename else ""
    return f"{what}{where}"


# Faults of the machine, not of the file being read or written: no space, quota, I/O error, no
# permission, read-only file system, a Drive mount that went away (ENOTCONN, ESTALE), a file that
# vanished under a running process. Work that meets one stops; it is never recorded as a fault of
# the clip (or checkpoint) it was working on.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM, errno.EROFS,
                                errno.ENOTCONN, errno.ESTALE, errno.ENOENT})


def environment_fault(exc: BaseException) -> Optional[OSError]:
    """The OSError of the machine behind `exc`, or None when `exc` is about the data itself.

    Follows the exception's cause and context, because a library often reports an OSError wrapped
    in its own error (PyAV's errors, fer_lib's ClipError raised while handling one)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class MachineFault(FerError):
    """Work stopped on a fault of the machine (`environment_fault`), not of the data it was working on."""

    def __init__(self, work: str, fault: OSError, then: str):
        super().__init__(f"{work} stopped: {describe_os_error(fault)} (a fault of the machine, not of the data: "
                         f"nothing was recorded against a clip); {then}")
        self.fault = fault
