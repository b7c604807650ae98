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


class FerError(ValueError):
    """A problem with the input or the environment that a person can fix; the message is one line.

    A ValueError, as every one of these errors was before they shared this base, so that code catching
    ValueError around fer_lib calls keeps working."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows in place of the traceback: the error's one line, its name in red."""
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {one_line(self)}"]


def one_line(exc: BaseException) -> str:
    """The exception's text with line breaks and runs of spaces collapsed to single spaces
    (library messages, e.g. transformers' or torch's, often span several lines)."""
    return " ".join(str(exc).split())
