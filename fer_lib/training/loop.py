"""The training loop: epochs of accumulated, clipped, mixed-precision steps; validation; early stopping; checkpoints.

What Accelerate does here, and what is written by hand (and why):
- Accelerate: device placement (`prepare`), precision (bf16 autocast on Ampere or newer, fp16 autocast
  with a GradScaler on older CUDA cards, fp32 on CPU), DDP wrapping and the process group under
  `torchrun` / `accelerate launch` (gloo on CPU), `no_sync` while accumulating, gradient clipping
  (unscaled first under fp16), skipped-step detection, gathering validation results.
- By hand, the loss normalisation of gradient accumulation: `Accelerator.backward` divides every loss
  by `gradient_accumulation_steps`, also in an epoch's last, shorter window (10 batches with 4 per
  step: the last 2 would count half). Here each loss is divided by the size of its own window, so
  every optimizer step follows the mean gradient of the batches it took.
- By hand, the LR scheduler step: a prepared scheduler steps `num_processes` times per call (it
  assumes a schedule sized on the undivided loader); ours is sized on this process's batches.
- Checkpoints and data order: see checkpoint.py and sampler.py.

Non-finite numbers stop training (`DivergedError`, one line naming the epoch and step, the learning rate
and the precision): a nan or inf gradient norm or training loss, checked once per optimizer step before
the step is taken, or a nan validation loss; no checkpoint is written from it, so `last` and `best`
keep the last finite weights (checkpoint.py refuses non-finite ones besides). Under fp16 an overflowing
step is the GradScaler's to skip (it lowers its scale and carries on); SKIPPED_STEPS_WARNING skipped in a
row print one warning.

Checkpoints: `last` at the end of every epoch and, with `checkpoint_every_steps` N, every N optimizer
steps inside an epoch (always at the end of an accumulation window, so no gradient is pending);
`best` whenever the validation metric (`early_stopping_metric`) improves. They go to the run folder the
loop writes, which in Colab is a working copy on the runtime's disk; after each one `DriveSync`
(drive_sync.py) decides whether the run folder on Drive is due for a copy. Resuming mid-epoch
regenerates the epoch's order and skips the batches already trained, restores the RNG states and
the running sums of the epoch's train metrics: the resumed run computes exactly what the
uninterrupted one would. Metrics are logged before the epoch's checkpoint, so a crash between the
two redoes the epoch and its row is replaced, not duplicated.

Stopping (SIGINT, SIGTERM: stopping.py): a request is looked at after every optimizer step and after
every epoch's checkpoint; mid-epoch the loop writes `last` of that step first (as
`checkpoint_every_steps` would), then `fit` returns with `stopped` set.
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, send_to_device
from tqdm.auto import tqdm

from fer_lib.config import ConfigError
from fer_lib.data.dataset import make_loader
from fer_lib.errors import FerError
from fer_lib.metrics import classification_metrics
from fer_lib.training import checkpoint
from fer_lib.training.drive_sync import DriveSync
from fer_lib.training.items import TrainingItems
from fer_lib.training.logging import MetricsLog
from fer_lib.training.optim import build_scheduler, restore_schedule
from fer_lib.training.stopping import StopRequest
from fer_lib.training.sampler import EpochBatches


SKIPPED_STEPS_WARNING = 25  # fp16: this many optimizer steps in a row skipped by the grad scaler are worth a line


class DivergedError(FerError):
    """Training produced nan or inf; the message names where, what is kept, and the usual causes."""


@dataclass
class Progress:
    """Where a run stands; saved as trainer_state.json in every checkpoint."""

    epoch: int = 0  # the epoch being trained (0-based); equals the epochs completed when batches_done == 0
    step: int = 0  # optimizer steps done
    batches_done: int = 0  # batches of `epoch` done (a mid-epoch checkpoint)
    best_metric: Optional[float] = None
    best_epoch: Optional[int] = None  # 1-based, as in metrics.csv
    bad_epochs: int = 0  # epochs since the best one (early stopping)
    loss_sum: float = 0.0  # running sums of the unfinished epoch's train metrics, over all processes
    correct: float = 0.0
    seen: float = 0.0
    world_size: int = 1

    def validate(self) -> "Progress":
        """ConfigError (one line) for a value no run can reach: a negative count or sum, a non-finite one, no process."""
        for name, value in dataclasses.asdict(self).items():
            low = 1 if name in ("world_size", "best_epoch") else 0
            if value is not None and not (math.isfinite(value) and value >= low):
                raise ConfigError(f"{name} must be >= {low} (and finite), got {value!r}")
        return self


class Trainer:
    def __init__(self, *, model, optimizer, accelerator: Accelerator, train_items: TrainingItems,
                 val_items: TrainingItems, train_cfg, config: dict, split: dict, run_dir: Path, log: MetricsLog,
                 progress: Progress, modalities: tuple[str, ...], num_workers: int, show_progress: bool = True,
                 sync: Optional[DriveSync] = None, stop: Optional[StopRequest] = None):
        self.model, self.optimizer, self.accelerator, self.sync = model, optimizer, accelerator, sync
        self.stop, self.stopped = stop, False
        self.cfg, self.config, self.split, self.run_dir, self.log = train_cfg, config, split, run_dir, log
        self.progress, self.modalities, self.show_progress = progress, modalities, show_progress
        rank, world = accelerator.process_index, accelerator.num_processes
        self.train_sampler = EpochBatches(len(train_items), train_cfg.batch_size, seed=train_cfg.seed, rank=rank,
                                          world_size=world, keyed=True)
        val_sampler = EpochBatches(len(val_items), train_cfg.batch_size, shuffle=False, rank=rank, world_size=world,
                                   pad=False, keyed=True)
        self.train_loader = make_loader(train_items, self.train_sampler, num_workers)
        self.val_loader = make_loader(val_items, val_sampler, num_workers)
        self.batches_per_epoch = self.train_sampler.batches_per_epoch()
        self.scheduler = build_scheduler(optimizer, train_cfg, self.steps_per_epoch)
        # Running train sums of this process (loss * clips, correct, clips), kept on the device: no sync per batch.
        self.sums = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
        self.loss_finite = torch.ones((), dtype=torch.bool, device=accelerator.device)  # this accumulation window
        self.skipped_in_row = 0  # fp16 steps the scaler skipped since the last one taken
        if accelerator.is_main_process:  # a resumed epoch's sums so far, over all processes, count once
            self.sums += torch.tensor([progress.loss_sum, progress.correct, progress.seen], dtype=torch.float64,
                                      device=accelerator.device)  # float64 as saved: float32 would round the sum

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch / self.cfg.grad_accum_steps)

    def fit(self) -> Progress:
        """Train until max_epochs, early stopping or a stop request (`self.stopped`, with a checkpoint of the
        step it stopped after: stopping.py); returns the final progress."""
        with self.stop.deferred() if self.stop is not None else nullcontext():
            return self._fit()

    def _fit(self) -> Progress:
        p = self.progress
        while p.epoch < self.cfg.max_epochs and p.bad_epochs < self.cfg.early_stopping_patience:
            start = time.perf_counter()
            trained = self._train_epoch(p.epoch)
            if trained is None:  # stopped mid-epoch, its checkpoint written
                return p
            train_loss, train_acc = trained
            val = self.evaluate()
            lr = next(group["lr"] for group in self.optimizer.param_groups if group["name"] == "heads")
            if not math.isfinite(val["loss"]):
                self._diverged(f"the validation loss after epoch {p.epoch + 1} is {val['loss']}")
            metric = val[self.cfg.early_stopping_metric]
            improved = p.best_metric is None or metric > p.best_metric
            p.epoch += 1
            p.batches_done = 0
            if improved:
                p.best_metric, p.best_epoch, p.bad_epochs = metric, p.epoch, 0
            else:
                p.bad_epochs += 1
            row = {"epoch": p.epoch, "step": p.step, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val["loss"], "val_acc": val["war"], "val_uar": val["uar"],
                   "val_macro_f1": val["macro_f1"], "lr": lr, "epoch_time_s": round(time.perf_counter() - start, 3)}
            if self.accelerator.is_main_process:
                self.log.log(row)
                tqdm.write(_summary(row, self.cfg.early_stopping_metric, improved))
            self.save(("best", "last") if improved else ("last",))  # best first: `last` never names a newer best
            if self._stop_requested():
                break
        return p

    def _stop_requested(self) -> bool:
        self.stopped = self.stop is not None and self.stop.requested(self.accelerator)
        return self.stopped

    def _train_epoch(self, epoch: int) -> Optional[tuple[float, float]]:
        """The epoch's mean train loss and accuracy; None when a stop request ended it early (a checkpoint
        of where it stopped is written)."""
        p, accum, n = self.progress, self.cfg.grad_accum_steps, self.batches_per_epoch
        self.train_sampler.set_epoch(epoch, skip=p.batches_done)
        self.model.train()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{self.cfg.max_epochs}", unit="batch",
                   initial=p.batches_done, total=n, leave=False,
                   disable=not (self.show_progress and self.accelerator.is_main_process))
        for i, batch in enumerate(bar, start=p.batches_done):
            window_start = i - i % accum
            window = min(accum, n - window_start)  # the last window of an epoch may be shorter
            steps_now = i == window_start + window - 1
            batch = send_to_device(batch, self.accelerator.device)
            with nullcontext() if steps_now else self.accelerator.no_sync(self.model):
                out = self.model(batch, modalities=self.modalities)
                self.accelerator.backward(out.loss / window)
            labels = batch["label"]
            self.loss_finite &= torch.isfinite(out.loss.detach())
            self.sums += torch.stack([out.loss.detach().double() * len(labels),
                                      (out.logits.argmax(-1) == labels).sum().double(),
                                      torch.tensor(len(labels), dtype=torch.float64, device=labels.device)])
            if steps_now:
                self._optimizer_step()
                p.batches_done = i + 1
                every = self.cfg.checkpoint_every_steps
                due = bool(every) and p.step % every == 0 and p.batches_done < n
                if due:
                    self.save(("last",))
                if p.batches_done < n and self._stop_requested():
                    if not due:
                        self.save(("last",))
                    return None
        loss_sum, correct, seen = self.accelerator.reduce(self.sums, "sum").tolist()
        self.sums.zero_()
        return loss_sum / seen, correct / seen

    def _optimizer_step(self) -> None:
        norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        if self.accelerator.scaler is None:  # fp16's scaler skips an overflowing step itself
            finite = self.loss_finite & (torch.isfinite(norm) if norm is not None else True)
            if not bool(self.accelerator.reduce(finite.float(), "sum") == self.accelerator.num_processes):
                self.optimizer.zero_grad(set_to_none=True)
                what = "training loss" if not bool(self.loss_finite) else "gradient norm"
                self._diverged(f"the {what} is {norm.item() if what == 'gradient norm' else 'nan or inf'} at "
                               f"epoch {self.progress.epoch + 1}, step {self.progress.step + 1}")
        self.loss_finite.fill_(True)
        self.optimizer.step()
        if not self.accelerator.optimizer_step_was_skipped:  # fp16: an overflowing step is skipped by the scaler
            self.scheduler.step()
            self.skipped_in_row = 0
        else:
            self.skipped_in_row += 1
            if self.skipped_in_row == SKIPPED_STEPS_WARNING and self.accelerator.is_main_process:
                tqdm.write(f"warning: the last {SKIPPED_STEPS_WARNING} optimizer steps were all skipped by the fp16 "
                           f"grad scaler (gradients overflow, scale now {self.accelerator.scaler.get_scale():g}); "
                           f"if this goes on, lower --lr (now {self.cfg.lr:g})")
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.step += 1

    def _diverged(self, what: str) -> None:
        """Stop with one line: where the numbers stopped being finite, which checkpoint is kept, the usual causes."""
        kept = checkpoint.progress_of(self.run_dir / "checkpoints" / "last")
        keeps = (f"{self.run_dir / 'checkpoints' / 'last'} keeps epoch {kept[0]}, the last finite weights" if kept
                 else "no checkpoint was written")
        precision = {"no": "fp32"}.get(self.accelerator.mixed_precision, self.accelerator.mixed_precision)
        raise DivergedError(f"training diverged: {what}; {keeps}. Usual causes: the learning rate (--lr {self.cfg.lr:g}: "
                            f"try 10x lower), the precision ({precision}; fp16 overflows sooner than bf16 or fp32)")

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss, WAR, UAR and macro-F1 over all processes (each clip counted once)."""
        # The bare model: DDP's forward would wait for the other processes, whose shares may differ by a batch.
        model = self.accelerator.unwrap_model(self.model).eval()
        loss_sum, labels, predictions = 0.0, [], []
        for batch in self.val_loader:
            batch = send_to_device(batch, self.accelerator.device)
            with self.accelerator.autocast():
                out = model(batch, modalities=self.modalities)
            loss_sum += out.loss.item() * len(batch["label"])
            labels += batch["label"].tolist()
            predictions += out.logits.argmax(-1).tolist()
        parts = gather_object([(loss_sum, labels, predictions)])
        labels = [y for _, ys, _ in parts for y in ys]
        predictions = [y for _, _, ys in parts for y in ys]
        return {"loss": sum(part[0] for part in parts) / len(labels), **classification_metrics(labels, predictions)}

    def save(self, names: tuple[str, ...]) -> None:
        """Write checkpoints `names` (rank 0 writes; every process contributes its RNG state and sums)."""
        rng = gather_object([checkpoint.rng_state()])
        loss_sum, correct, seen = self.accelerator.reduce(self.sums.clone(), "sum").tolist()
        progress = dataclasses.replace(self.progress, loss_sum=loss_sum, correct=correct, seen=seen,
                                       world_size=self.accelerator.num_processes)
        if self.accelerator.is_main_process:
            scaler = self.accelerator.scaler
            checkpoint.save(
                checkpoint.Checkpoint(
                    weights=self.accelerator.unwrap_model(self.model).trainable_state_dict(),
                    state={"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                           "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng},
                    progress=dataclasses.asdict(progress),
                    config=self.config,
                    split=self.split,
                ),
                self.run_dir,
                names,
            )
            if self.sync is not None:
                self.sync.after_save(self.progress.epoch)
        self.accelerator.wait_for_everyone()

    def restore(self, state: dict) -> None:
        """Optimizer, scheduler, scaler and this process's RNG state from a checkpoint's training_state."""
        self.optimizer.load_state_dict(state["optimizer"])
        restore_schedule(self.scheduler, state["scheduler"])  # this run's length (max_epochs may have changed)
        if self.accelerator.scaler is not None and state["scaler"] is not None:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        checkpoint.set_rng_state(rngs[self.accelerator.process_index % len(rngs)])


def _summary(row: dict, metric: str, improved: bool) -> str:
    return (f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f}  "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f} uar {row['val_uar']:.3f} "
            f"f1 {row['val_macro_f1']:.3f}  {row['epoch_time_s']:.1f}s{'  * best ' + metric if improved else ''}")
