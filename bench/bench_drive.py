"""Bytes a 50-epoch `lightweight` run writes to and deletes from Google Drive, against its run folder's final size.

    python -m bench.bench_drive [--epochs 50] [--epoch_seconds 20 60 180] [--sync_minutes 10]

The code is real, the training simulated: every epoch the real `checkpoint.save` writes a checkpoint
of the real size of `lightweight` (its trainable parameters, and AdamW's two moments of each in the
training state) and the real `MetricsLog` its metrics and curves into the working copy on local
disk; a real `DriveSync` per assumed epoch time copies it to a "Drive" folder of its own, on a clock
that advances by that time per epoch. No epoch time has been measured on a GPU, so the figures are
given for several assumed ones. The best checkpoint changes at the epochs of IMPROVED, like a
validation curve that flattens.

What Drive receives is counted at the Drive folder, not by DriveSync (`DriveLedger`): bytes written
from what the folder holds after every copy (a file with a new inode, size or modification time was
created or rewritten), bytes deleted at the os.unlink / os.remove / os.replace / os.rename calls that
remove or replace a file there.

"today" is the code before this change, computed from the same sizes, not run: it wrote every
epoch's `last` into a new folder on Drive and deleted the old one, and `best` likewise at each
improvement (every deleted byte stays in Drive's trash, counted against the quota, for 30 days).

Like for like: both sides' ratio divides what was written by the same amount, the run's result
(`kept_gb`: `last`, `best` and the small files, what either schedule leaves a person); the spare
slot the schedule also keeps on Drive (`final_gb` counts it) is in neither denominator.
`drive_bytes` computes the figures in bytes for any checkpoint (the tests run it on a small one).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

IMPROVED = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22, 27, 33, 41)  # epochs where the best checkpoint changes


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lightweight_checkpoint():
    """A Checkpoint with the shapes of `lightweight`'s trainable weights and their AdamW state (random values)."""
    from fer_lib.config import TrainConfig, get_preset
    from fer_lib.models.sizes import build_for_sizing
    from fer_lib.training import checkpoint
    from fer_lib.training.run_folder import resolved_config

    model_cfg = get_preset("lightweight")
    model = build_for_sizing(model_cfg)  # meta device: shapes only
    weights = {name: torch.randn(p.shape) for name, p in model.named_parameters() if p.requires_grad}
    state = {"optimizer": {"state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.randn(w.shape),
                                         "exp_avg_sq": torch.rand(w.shape)} for i, w in enumerate(weights.values())},
                           "param_groups": [{"lr": 1e-4, "params": list(range(len(weights)))}]},
             "scheduler": {"last_epoch": 0}, "scaler": None, "rng": [checkpoint.rng_state()]}
    config = resolved_config(model_cfg, TrainConfig())
    split = {"name": "fixed", "train": list(range(1, 17)), "val": list(range(17, 21)), "test": list(range(21, 25))}
    return checkpoint.Checkpoint(weights=weights, state=state, progress={}, config=config, split=split)


class DriveLedger:
    """What one "Drive" folder received and lost: bytes written (files created or rewritten, from what the
    folder holds after each copy: a file whose inode, size or modification time is new) and bytes deleted
    (files unlinked or replaced there, seen at the os.unlink / os.remove / os.replace / os.rename calls)."""

    def __init__(self, folder: Path):
        self.folder, self.seen, self.written, self.deleted = folder, set(), 0, 0

    def look(self) -> None:
        for path in self.folder.rglob("*"):
            if path.is_file():
                stat = path.stat()
                if (key := (stat.st_ino, stat.st_size, stat.st_mtime_ns)) not in self.seen:
                    self.seen.add(key)
                    self.written += stat.st_size

    def going(self, path) -> None:
        """`path` is about to be unlinked or replaced."""
        path = Path(os.fspath(path)).absolute()
        if path.is_relative_to(self.folder) and path.is_file():
            self.deleted += path.stat().st_size

    def size(self) -> int:
        return sum(path.stat().st_size for path in self.folder.rglob("*") if path.is_file())


@contextmanager
def watching_deletions(ledgers: list[DriveLedger]) -> Iterator[None]:
    real = {name: getattr(os, name) for name in ("unlink", "remove", "replace", "rename")}

    def removing(name):
        def call(path, *args, **kwargs):
            for ledger in ledgers:
                ledger.going(path)
            return real[name](path, *args, **kwargs)
        return call

    def replacing(name):
        def call(src, dst, *args, **kwargs):
            for ledger in ledgers:
                ledger.going(dst)
            return real[name](src, dst, *args, **kwargs)
        return call

    try:
        os.unlink, os.remove = removing("unlink"), removing("remove")
        os.replace, os.rename = replacing("replace"), replacing("rename")
        yield
    finally:
        for name, function in real.items():
            setattr(os, name, function)


def drive_bytes(ckpt, epochs: int, epoch_seconds: tuple[float, ...], sync_minutes: float) -> dict:
    """The simulated run with checkpoint `ckpt` (module docstring), in bytes: "checkpoint", "kept" (last + best +
    small files) and per epoch time {"copies_of_last", "written", "deleted", "final"}; "today" computed."""
    from fer_lib.training import checkpoint, run_folder
    from fer_lib.training.drive_sync import DriveSync
    from fer_lib.training.logging import MetricsLog

    best_changes = len([epoch for epoch in IMPROVED if epoch <= epochs])
    out: dict = {"best_changes": best_changes}
    with tempfile.TemporaryDirectory(prefix="bench_drive_") as tmp:
        work = Path(tmp) / "local" / "run"
        clocks = {seconds: Clock() for seconds in epoch_seconds}
        syncs, ledgers, copied = {}, {}, {seconds: set() for seconds in epoch_seconds}
        for seconds, clock in clocks.items():
            drive = Path(tmp) / f"drive_{seconds:g}s" / "run"
            syncs[seconds] = DriveSync(work, drive, sync_minutes, clock=clock, warn=print)
            ledgers[seconds] = DriveLedger(drive)
        for sync in syncs.values():  # in the order of train(): the working copy is prepared, then the config written
            sync.start()
        for folder in [work, *(sync.drive_dir for sync in syncs.values())]:
            run_folder.write(folder, ckpt.config, ckpt.split)
        log = MetricsLog(work)
        with watching_deletions(list(ledgers.values())):
            for epoch in range(1, epochs + 1):
                log.log({"epoch": epoch, "step": 90 * epoch, "train_loss": 1.0 / epoch, "train_acc": 0.5,
                         "val_loss": 1.0, "val_acc": 0.5, "val_uar": 0.5, "val_macro_f1": 0.5, "lr": 1e-4,
                         "epoch_time_s": 1.0})
                progress = {"epoch": epoch, "step": 90 * epoch, "batches_done": 0, "best_epoch": epoch}
                checkpoint.save(dataclasses.replace(ckpt, progress=progress), work,
                                ("best", "last") if epoch in IMPROVED else ("last",))
                for seconds, sync in syncs.items():
                    clocks[seconds].now = epoch * seconds
                    sync.after_save(epoch)
                    ledgers[seconds].look()
                    copied[seconds].add(checkpoint.progress_of(sync.drive_dir / "checkpoints" / "last"))
            for seconds, sync in syncs.items():
                sync.finish()
                ledgers[seconds].look()
                copied[seconds].add(checkpoint.progress_of(sync.drive_dir / "checkpoints" / "last"))
        checkpoint_bytes = sum(path.stat().st_size for path in (work / "checkpoints" / "last").iterdir())  # checksums.json too
        kept_on_drive = next(iter(syncs.values())).drive_dir  # its small files: config, metrics, sync_state.json
        small_bytes = sum(path.stat().st_size for path in kept_on_drive.iterdir() if path.is_file())
        out.update(checkpoint=checkpoint_bytes, small=small_bytes, kept=2 * checkpoint_bytes + small_bytes)
        for seconds, ledger in ledgers.items():
            out[seconds] = {"copies_of_last": len(copied[seconds] - {None}), "written": ledger.written,
                            "deleted": ledger.deleted, "final": ledger.size()}
    out["today"] = {"written": (epochs + best_changes) * checkpoint_bytes + epochs * small_bytes,
                    "deleted": (epochs + best_changes - 2) * checkpoint_bytes, "final": out["kept"]}
    return out


def run(epochs: int = 50, epoch_seconds: tuple[float, ...] = (20.0, 60.0, 180.0), sync_minutes: float = 10.0) -> dict:
    measured = drive_bytes(lightweight_checkpoint(), epochs, epoch_seconds, sync_minutes)
    kept = measured["kept"]
    figures: dict = {"epochs": epochs, "sync_minutes": sync_minutes, "best_changes": measured["best_changes"],
                     "checkpoint_mb": round(measured["checkpoint"] / 2**20, 1), "kept_gb": round(kept / 2**30, 2)}
    for seconds in epoch_seconds:
        one = measured[seconds]
        figures[f"epoch_{seconds:g}s"] = {
            "run_minutes": round(epochs * seconds / 60, 1),
            "copies_of_last": one["copies_of_last"],
            "written_gb": round(one["written"] / 2**30, 2),
            "deleted_mb": round(one["deleted"] / 2**20, 2),
            "final_gb": round(one["final"] / 2**30, 2),
            "written_to_kept": round(one["written"] / kept, 2),
        }
    today = measured["today"]
    figures["today_computed"] = {
        "written_gb": round(today["written"] / 2**30, 2),
        "deleted_gb": round(today["deleted"] / 2**30, 2),
        "final_gb": round(today["final"] / 2**30, 2),
        "written_to_kept": round(today["written"] / kept, 1),
    }
    for key, value in figures.items():
        print(f"{key:>18}: {value}")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--epoch_seconds", type=float, nargs="+", default=[20.0, 60.0, 180.0])
    parser.add_argument("--sync_minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    run(args.epochs, tuple(args.epoch_seconds), args.sync_minutes)


if __name__ == "__main__":
    main()
