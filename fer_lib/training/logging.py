"""Per-epoch metrics a person can open: metrics.csv, metrics.json, curves.png, and optionally W&B.

The files are rewritten whole (through a temp file and a rename), so a disconnect leaves the previous
complete version, never a torn row: the metrics after every epoch; curves.png after an epoch when the
last drawing is CURVES_EVERY_S old (drawing costs about a second on a CPU, more than a whole epoch of
the smallest runs) and when training ends (`draw_curves`). On resume the log is reloaded
and cut back to the epochs the checkpoint has, so an epoch that was logged but not checkpointed
before a crash is not listed twice.

W&B is off by default and imported only when asked for. It never stops at a prompt: the key comes
from the Colab secret WANDB_API_KEY or the environment variable of that name; without one the run
is logged offline (`wandb sync` uploads it later); without the package it is skipped with a note.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Optional

from fer_lib import show
from fer_lib.colab import colab_secret
from fer_lib.fileio import atomic_file, atomic_write_text
from fer_lib.plots import curves_figure, save_png
from fer_lib.training import run_folder

COLUMNS = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "val_uar", "val_macro_f1", "lr",
           "epoch_time_s")
CURVES_EVERY_S = 30.0  # the fastest curves.png is redrawn; a GPU epoch of a real preset takes longer


class MetricsLog:
    def __init__(self, run_dir: str | Path, epochs_done: int = 0):
        self.run_dir = Path(run_dir)
        rows = run_folder.read_json(self.run_dir / "metrics.json",
                                    "metrics.csv holds the same rows: restore metrics.json, or move both away "
                                    "to continue without the earlier epochs' rows") or []
        self.rows: list[dict] = [row for row in rows if row["epoch"] <= epochs_done]
        self.wandb = None
        self.live_curves = show.LiveFigure()  # in a notebook: curves.png, replaced in place when redrawn
        self._drawn_at: Optional[float] = None  # time.monotonic() of the last curves.png
        self._drawn_rows = 0

    def start_wandb(self, project: str, run_name: str, config: dict) -> str:
        """Open a W&B run (resumed by name); returns a line saying where it logs."""
        try:
            import wandb
        except ImportError:
            return "W&B requested but the wandb package is not installed (pip install wandb): not logging to W&B"
        key = colab_secret("WANDB_API_KEY") or os.environ.get("WANDB_API_KEY")
        mode = "online" if key else "offline"
        if key:
            wandb.login(key=key, verify=False)
        self.wandb = wandb.init(project=project, name=run_name, id=run_name, resume="allow", config=config,
                                dir=str(self.run_dir), mode=mode)
        where = f"project {project!r}" if key else f"offline under {self.run_dir / 'wandb'} (no WANDB_API_KEY)"
        return f"W&B: {where}"

    def log(self, row: dict) -> None:
        self.rows.append({name: row[name] for name in COLUMNS})
        self._write_json()
        self._write_csv()
        if self._drawn_at is None or time.monotonic() - self._drawn_at >= CURVES_EVERY_S:
            self._plot()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])

    def draw_curves(self) -> None:
        """curves.png with every epoch logged, when the last drawing lacks some (training ends)."""
        if self._drawn_rows < len(self.rows):
            self._plot()

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()

    def _write_json(self) -> None:
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(self.rows, indent=2))

    def _write_csv(self) -> None:
        with atomic_file(self.run_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)

    def _plot(self) -> None:
        save_png(curves_figure(self.rows), self.run_dir / "curves.png", dpi=100)
        self._drawn_at, self._drawn_rows = time.monotonic(), len(self.rows)
        self.live_curves.show(self.run_dir / "curves.png")

