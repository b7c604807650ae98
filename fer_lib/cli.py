"""What every `python -m fer_lib.*` command shares: the argument parser, checked flag types, the exit statuses.

    @command(interrupted="run the same command again to resume")
    def main(argv=None) -> int:
        args = ArgumentParser(prog=..., description=...).parse_args(argv)
        ...

Exit statuses (README, "Command line"):

    0    done
    2    bad input or a fault of the environment: one line on stderr, `error: <what> ...<what to do>`.
         A wrong or out-of-range flag value, a missing folder, a foreign checkpoint (any `FerError`), or an
         OSError about a path or the machine (no such file, permission denied, disk full, Drive gone).
    130  interrupted (Ctrl-C / the notebook's stop button, SIGTERM while training): one line saying how to continue
    1    a bug: Python's traceback, unchanged, so that it can be reported

Numeric flags are checked when they are parsed (`int_range`, `float_range`), so a wrong value stops
the command at once with one line, before any work starts. Each such type keeps its bounds (`.low`,
`.high`, `.low_open`, `.high_open`), so tests/test_faults.py finds every numeric flag of every command
and tries values outside them.

`COMMANDS` is the registry of commands: `@command` adds each `main` it wraps under its module's name
(`fer_lib.train` ...) when that module is imported.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Callable, Optional

from fer_lib.errors import FerError, Stopped, describe_os_error, one_line

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
COMMANDS: dict[str, Callable[[Optional[list[str]]], int]] = {}  # module name -> its wrapped main (`command`)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage first) and no abbreviated flags."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        message = re.sub(r"^argument (-[-\w]+)(?:/[-\w]+)*: ", r"\1 ", message)  # "argument --x: must ..." -> "--x must ..."
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def command(interrupted: str = "stopped; run the same command again to continue") -> Callable:
    """Decorator for a command's `main(argv) -> int`: errors a person can fix become one line and exit status 2.

    `interrupted`: what to tell the person after Ctrl-C (exit status 130).
    """

    def wrap(main: Callable[[Optional[list[str]]], Optional[int]]) -> Callable[[Optional[list[str]]], int]:
        @functools.wraps(main)
        def run(argv: Optional[list[str]] = None) -> int:
            try:
                return int(main(argv) or 0)
            except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, already printed as one line)
                return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
            except FerError as exc:
                print(f"error: {one_line(exc)}", file=sys.stderr)
            except OSError as exc:
                if exc.errno is None and exc.filename is None:
                    raise  # not about a path or the machine: a bug
                print(f"error: {describe_os_error(exc)}", file=sys.stderr)
            except Stopped as exc:  # it says where things stand and how to continue
                print(one_line(exc), file=sys.stderr)
                return EXIT_INTERRUPTED
            except KeyboardInterrupt:
                print(f"interrupted: {interrupted}", file=sys.stderr)
                return EXIT_INTERRUPTED
            return EXIT_BAD_INPUT

        COMMANDS[main.__module__] = run
        return run

    return wrap


def int_range(low: Optional[int] = None, high: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (either bound may be open)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must {_bounds(low, high)}, got {value}")
        return value

    parse.__name__ = "integer"
    parse.low, parse.high, parse.low_open, parse.high_open = low, high, False, False
    return parse


def float_range(low: Optional[float] = None, high: Optional[float] = None, *, low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number between low and high (`*_open`: the bound itself is excluded)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if value != value or value in (float("inf"), float("-inf")) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"must {_bounds(low, high, low_open, high_open)}, got {text}")
        return value

    parse.__name__ = "number"
    parse.low, parse.high, parse.low_open, parse.high_open = low, high, low_open, high_open
    return parse


def _bounds(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None and isinstance(low, int) and isinstance(high, int) and not (low_open or high_open):
        return f"lie in {low}..{high}"
    if low is not None and high is not None:
        return f"lie in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"be {'>' if low_open else '>='} {low}"
    return f"be {'<' if high_open else '<='} {high}"


def add_allow_incomplete(parser: argparse.ArgumentParser) -> None:
    """--allow_incomplete, the same in every command that uses a trained run (fer_lib.training.run_folder.sync_note)."""
    parser.add_argument("--allow_incomplete", action="store_true",
                        help="use a run whose folder holds only part of its training (Drive behind the training, "
                             "or training not over); the output says so")


POSITIVE_INT = int_range(1)
NON_NEGATIVE_INT = int_range(0)
POSITIVE_FLOAT = float_range(0, low_open=True)
SEED = int_range(0, 2**32 - 1)  # numpy's legacy seeding (accelerate's set_seed) takes no more
