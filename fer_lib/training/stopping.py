"""Stopping training on request: SIGINT (Ctrl-C, a notebook's stop button) or SIGTERM (a scheduler).

    stop = StopRequest()
    with stop.installed():
        ...                       # Trainer.fit calls stop.deferred(), then stop.requested(accelerator) per step

Why: a KeyboardInterrupt raised in the middle of a step, a checkpoint write or a Drive copy printed a
hundred-line traceback and left the run wherever it was. While the loop trains (`deferred`), the first
signal only asks it to stop: the step under way is finished, a checkpoint of exactly that point is
written (as `checkpoint_every_steps` writes one: resuming computes what the uninterrupted run would),
and train.py copies the run to Drive and ends with one line (`fer_lib.errors.Stopped`): where
training stopped, what Drive holds, how to continue. A second signal interrupts at once (a checkpoint
write or a Drive copy cut short keeps the previous complete one: checkpoint.py). Outside the loop
(loading, building the embedding cache) a signal interrupts at once: nothing is lost there.

Several processes (DDP): every process stops at the same step (the request is summed over them).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from tqdm.auto import tqdm

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    def __init__(self):
        self.signal: Optional[str] = None  # the name of the signal that asked to stop
        self.deferring = False

    @contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        """Handle SIGINT and SIGTERM while the block runs (only the main thread can: elsewhere, nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {number: signal.getsignal(number) for number in SIGNALS}
        for number in SIGNALS:
            signal.signal(number, self._handle)
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """While the block runs, a first signal asks to stop (see `requested`) instead of interrupting."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False

    def requested(self, accelerator) -> bool:
        """True when any process was asked to stop (the same answer on every process)."""
        asked = self.signal is not None
        if accelerator.num_processes > 1:
            flag = torch.tensor([float(asked)], device=accelerator.device)
            asked = accelerator.reduce(flag, "sum").item() > 0
        return asked

    def _handle(self, number: int, frame) -> None:
        if self.signal is not None or not self.deferring:
            self.signal = self.signal or signal.Signals(number).name
            raise KeyboardInterrupt
        self.signal = signal.Signals(number).name
        tqdm.write(f"{self.signal}: stopping after the current step (a checkpoint of it is written, then the run is "
                   "copied to Drive); stop again to stop at once")
