"""The one-line form of an error message, for the commands' `error: ...` lines and wrapped errors."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The exception's text with line breaks and runs of spaces collapsed to single spaces
    (library messages, e.g. transformers' or torch's, often span several lines)."""
    return " ".join(str(exc).split())
