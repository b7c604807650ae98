"""Train an emotion model: `train(...)` in a notebook, `python -m fer_lib.train` on the command line.

    python -m fer_lib.train (--cache_dir CACHE | --data_dir RAW [--cache_dir CACHE]) --save_dir RUNS
        --config_type {tiny,lightweight,full} [--batch_size 8] [--grad_accum_steps 2] [--max_epochs 50]
        [--lr 1e-4] [--early_stopping_patience 15] [--use_wandb] [--resume_from CKPT [--unfreeze visual_encoder]]
        [--modalities av|a|v] [--fold K] [--seed 42] [--local_dir DIR [--sync_minutes 10]]

`--cache_dir` is the preprocessing cache (`python -m fer_lib.preprocess`); `--data_dir` the raw clips,
preprocessed first into `--cache_dir` (default: `cache/preprocessed/` beside them, as in the Drive
layout) when they are not cached yet. The preset defaults to `lightweight` here and in `train()`.
Everything goes to one run folder,
`<save_dir>/<run_name>/` (layout in drive_layout.md, checkpoint files in fer_lib/training/checkpoint.py):
config.json, split.json, checkpoints/last/, checkpoints/best/, metrics.csv, metrics.json, curves.png.
With `--local_dir` (the notebooks set it in Colab, where `--save_dir` is on Google Drive) the run is
written to `<local_dir>/<run_name>/` on the runtime's disk first and copied to the run folder every
`--sync_minutes` and at the end (fer_lib/training/drive_sync.py): a disconnect loses at most that long.
After training, layer_weights.png shows which encoder layers the best checkpoint's layer mixes use.
config.json also holds the fingerprints of the pretrained weights loaded from their source
(`fer_lib.models.fingerprint`); resuming against other weights stops unless `--allow_other_frozen_weights`.
A pretrained part without a revision pinned in the code loads the commit recorded in
`<save_dir>/hub_revisions.json` at its first run (`fer_lib.models.hub_revisions`); config.json holds it.

Where a run starts:
- its folder already has `checkpoints/last`: it continues from there (the same command again resumes
  after a disconnect: same epoch, step, optimizer state, data order and RNG streams);
- else `--resume_from CKPT` with the same config (see run_folder.py for what "same" ignores): it
  continues that checkpoint's training state in this folder;
- else `--resume_from CKPT` with another config (e.g. `--unfreeze visual_encoder` for stage 3, or
  another lr): it starts from those weights with a fresh optimizer and schedule, from epoch 0;
- else a folder with a `best` but no `last` (deleted, or lost with its spare) is refused with one line saying how
  to go on (from best with `--resume_from RUN/checkpoints/best --run_name RUN`, or a new run), never
  trained over from scratch;
- else from scratch.
A changed config gets a new default folder name, so earlier results are never overwritten; an
explicit `--run_name` whose folder holds another config is refused with the differences and the two
ways forward (a new run name derived from this one and the change, e.g. `lightweight-lr5e-4`, or
starting over once the old folder is deleted or renamed).

A changed `--max_epochs` is not another run: training goes on in the same folder (to train further,
or to stop sooner), and the learning-rate schedule is rebuilt for the new length, from the step the
run has reached; the run says so when it resumes. The curve then differs from that of a run started
with either length (metrics.csv's `lr` column shows it); for a clean schedule, start a new run from
this one's weights with `--resume_from RUN/checkpoints/best` (a fresh optimizer and schedule).

One process trains into a run folder at a time: a second one stops at once with one line naming the
holder (`fer_lib.locking`; the lease of a holder that crashed or lost its runtime is taken over).

Stopping (Ctrl-C, a notebook's stop button, SIGTERM): the step under way finishes, a checkpoint of it is
written and the run copied to Drive, and one line (`fer_lib.errors.Stopped`, exit status 130) says
`stopped at epoch E (step S); Drive holds epoch D; run 03 again (or the same command) to continue`
(fer_lib/training/stopping.py). The run folder records its sync state (`sync_state.json`:
run_folder.py); a training that ends while the run folder on Drive lacks part of it (Drive gone, or
full) is not done: DriveBehindError, one line saying what Drive holds against what training reached.

Several GPUs: the same command under `torchrun --nproc_per_node N -m fer_lib.train ...` or
`accelerate launch --num_processes N -m fer_lib.train ...` runs DDP; `--batch_size` is per process.
Process 0 writes all files.

Bad input (a config value, a missing cache, a cache built for other model inputs, a checkpoint of
another preset or architecture, a run folder of another config or with a damaged config.json,
split.json or metrics.json, a run folder in use) ends with one line on stderr and exit code 2
(`fer_lib.cli`), before the run folder is written.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed

from fer_lib import cli, colab
from fer_lib import modalities as modality_names
from fer_lib.config import PRESETS, ConfigError, ModelConfig, TrainConfig, get_preset
from fer_lib.data import cache
from fer_lib.data.dataset import RavdessDataset, default_num_workers
from fer_lib.data.splits import DEFAULT_FOLDS, get_split
from fer_lib.errors import Stopped
from fer_lib.models import PRETRAINED_PARTS, build_model, fingerprint, hub_revisions, layer_mix
from fer_lib.plots import layer_weights_figure, save_png
from fer_lib.preprocess import ensure_cache
from fer_lib.training import checkpoint, embedding_cache, run_folder
from fer_lib.training.checkpoint import CheckpointError
from fer_lib.training.drive_sync import DriveBehindError, DriveSync
from fer_lib.training.items import TrainingItems
from fer_lib.training.logging import MetricsLog
from fer_lib.training.loop import Progress, Trainer
from fer_lib.training.optim import build_optimizer
from fer_lib.training.stopping import StopRequest

DEFAULT_PRESET = "lightweight"
# Which config field freezes each of the model's PRETRAINED_PARTS.
FREEZE_FIELDS = {"audio_encoder": ("audio", "freeze_encoder"), "visual_encoder": ("visual", "freeze_encoder"),
                 "backbone": ("fusion", "freeze_backbone")}


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    epochs: int  # completed
    steps: int
    best_epoch: int
    best_metric: float
    metric: str  # macro_f1 | uar
    stopped_early: bool
    metrics: list[dict]  # the rows of metrics.json


def train(cache_dir: Optional[Union[str, Path]], save_dir: Union[str, Path],
          model_config: Union[str, ModelConfig] = DEFAULT_PRESET, train_config: Optional[TrainConfig] = None, *,
          data_dir: Optional[Union[str, Path]] = None, run_name: Optional[str] = None, unfreeze: Iterable[str] = (),
          embedding_dir: Optional[Union[str, Path]] = None, show_progress: bool = True,
          local_dir: Optional[Union[str, Path]] = None, sync_minutes: float = 10.0,
          allow_other_frozen_weights: bool = False) -> TrainResult:
    """Train (or resume) one run; see the module docstring.

    cache_dir: the preprocessing cache; data_dir: raw clips, preprocessed into `cache_dir` first when
    needed (`fer_lib.preprocess.ensure_cache`). model_config: a preset name or a ModelConfig.
    train_config: TrainConfig (its `resume_from` names a checkpoint folder to start from). unfreeze:
    parts ("audio_encoder", "visual_encoder", "backbone") to train although the preset freezes them.
    embedding_dir: where frozen-encoder features are cached (default: `embeddings/` beside the
    preprocessing cache, i.e. `cache/embeddings/` in the Drive layout). run_name: the run folder's name
    (default: from the config). The run folder is held from the start to the end of the call
    (FolderInUseError when another live process trains into it). local_dir: write the run there
    first (the runtime's disk) and copy it to `save_dir` every `sync_minutes` and at the end; None:
    write `save_dir/<run name>` directly.
    allow_other_frozen_weights: resume although the pretrained weights loaded now differ from those the
    checkpoint was trained with.
    """
    model_cfg = get_preset(model_config) if isinstance(model_config, str) else copy.deepcopy(model_config)
    train_cfg = dataclasses.replace(train_config or TrainConfig())
    for part in unfreeze:
        if part not in FREEZE_FIELDS:
            raise ConfigError(f"cannot unfreeze {part!r}; choose from {tuple(FREEZE_FIELDS)}")
        section, field = FREEZE_FIELDS[part]
        setattr(getattr(model_cfg, section), field, False)
    model_cfg.validate()
    train_cfg.validate()
    colab.check_mounted(save_dir)
    if train_cfg.resume_from and (Path(train_cfg.resume_from).expanduser() / checkpoint.CONFIG).is_file():
        # before the hub is asked for anything: a checkpoint of another preset is refused first
        source = Path(train_cfg.resume_from).expanduser()
        _refuse_other_preset(source, checkpoint.read_config(source / checkpoint.CONFIG), model_cfg)
    # Every hub part at a commit (pinned in the code, else the one recorded beside the runs): config.json holds it.
    model_cfg = hub_revisions.pin_revisions(model_cfg, Path(save_dir).expanduser() / hub_revisions.LOCK_FILE)
    config = run_folder.resolved_config(model_cfg, train_cfg)
    run_dir = run_folder.path(save_dir, run_name, config)
    colab.check_mounted(run_dir)

    accelerator = Accelerator(
        mixed_precision=_precision(), cpu=not torch.cuda.is_available(),
        # Parameters that get no gradient in a step are normal here (the "missing" tokens, the branch of
        # an unused modality), and DDP must be told to expect them.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    # Process 0 holds the run folder until the run ends: a second trainer into it stops at once.
    stop = StopRequest()
    with stop.installed(), run_folder.hold(run_dir) if accelerator.is_main_process else nullcontext():
        return _train(accelerator, run_dir, config, model_cfg, train_cfg, cache_dir, data_dir, embedding_dir,
                      show_progress, local_dir, sync_minutes, allow_other_frozen_weights, stop)


def _train(accelerator: Accelerator, run_dir: Path, config: dict, model_cfg: ModelConfig, train_cfg: TrainConfig,
           cache_dir, data_dir, embedding_dir, show_progress: bool, local_dir, sync_minutes: float,
           allow_other_frozen_weights: bool, stop: StopRequest) -> TrainResult:
    with accelerator.main_process_first():
        cache_dir = ensure_cache(data_dir, cache_dir)
    cache.check_inputs(cache_dir, model_cfg.input)
    clips = cache.list_clips(cache_dir)
    split = get_split(train_cfg.fold, {clip.actor for clip in clips})
    split_info = {**split.as_dict(), "fold": train_cfg.fold, "manifest_hash": cache.manifest_hash(cache_dir)}
    run_folder.check(run_dir, config, split_info)
    work_dir = Path(local_dir).expanduser() / run_dir.name if local_dir else run_dir
    if local_dir and (work_dir.resolve().is_relative_to(run_dir.resolve())
                      or run_dir.resolve().is_relative_to(work_dir.resolve())):
        raise run_folder.RunFolderError(
            f"--local_dir {local_dir} would put the working copy {work_dir} inside the run folder {run_dir} (or the run "
            "folder inside it), so the run would be copied into itself; choose a folder outside --save_dir, on the "
            "machine's own disk (e.g. /content/fer_local in Colab)")
    sync = DriveSync(work_dir, run_dir, sync_minutes) if local_dir and accelerator.is_main_process else None
    try:
        return _train_held(accelerator, run_dir, work_dir, sync, config, model_cfg, train_cfg, cache_dir, clips, split,
                           split_info, embedding_dir, show_progress, sync_minutes, allow_other_frozen_weights, stop)
    except KeyboardInterrupt as interrupt:  # SIGINT / SIGTERM (stopping.py): one line, where things stand
        if isinstance(interrupt, Stopped):
            raise
        raise Stopped(_stopped(run_dir, work_dir, sync, accelerator.is_main_process)) from None


def _train_held(accelerator: Accelerator, run_dir: Path, work_dir: Path, sync: Optional[DriveSync], config: dict,
                model_cfg: ModelConfig, train_cfg: TrainConfig, cache_dir: Path, clips, split, split_info: dict,
                embedding_dir, show_progress: bool, sync_minutes: float, allow_other_frozen_weights: bool,
                stop: StopRequest) -> TrainResult:
    say = accelerator.print
    with accelerator.main_process_first():  # process 0 prepares the folders first
        if accelerator.is_main_process:  # holding the run folder: no other process writes there
            for folder in {run_dir, work_dir}:
                checkpoint.clean_staging(folder)
            if sync is not None:
                sync.start()
        last = checkpoint.find(work_dir)
    if last is None and train_cfg.resume_from is None:
        _refuse_restart_over_best(work_dir, run_dir)
    start = _starting_checkpoint(last, train_cfg.resume_from, model_cfg)
    set_seed(train_cfg.seed)
    model = build_model(model_cfg)
    config[fingerprint.FIELD] = fingerprint.frozen_fingerprints(model)
    if start is not None:
        for line in fingerprint.check(model, start.config.get(fingerprint.FIELD), allow_other_frozen_weights):
            say(f"warning: {line}")
    progress, state, origin = _load_start(model, config, start, resumed=last is not None)
    log = MetricsLog(work_dir, epochs_done=progress.epoch)
    if accelerator.is_main_process:  # only now: a command refused above has written nothing
        for folder in {run_dir, work_dir}:
            run_folder.write(folder, config, split_info)
        if sync is None:
            _record(run_dir, "training")
    every = f"at most every {sync_minutes:g} minutes" if sync_minutes else "after every checkpoint"
    copied = f" (written to {work_dir} first, copied {every} and at the end)" if sync else ""
    say(f"run folder: {run_dir}{copied}\n{split.describe()}\n"
        f"device: {accelerator.device} x {accelerator.num_processes}, precision {accelerator.mixed_precision}")
    if progress.world_size != accelerator.num_processes and progress.batches_done:
        say(f"the checkpoint was saved by {progress.world_size} processes: epoch {progress.epoch + 1} restarts")
        progress = dataclasses.replace(progress, batches_done=0, loss_sum=0.0, correct=0.0, seen=0.0)
    say(origin)

    model.to(accelerator.device)
    modalities = modality_names.parse(train_cfg.modalities)
    num_workers = default_num_workers() if train_cfg.num_workers is None else train_cfg.num_workers
    embedding_root = Path(embedding_dir).expanduser() if embedding_dir else cache_dir.parent / "embeddings"
    stores = {
        modality: embedding_cache.open_or_build(modality, embedding_root, model, model_cfg, cache_dir,
                                                split_info["manifest_hash"], accelerator, train_cfg.batch_size,
                                                num_workers, show_progress)
        for modality in embedding_cache.cached_modalities(model, modalities, train_cfg.embedding_cache)
    }
    for modality, store in stores.items():
        say(f"{modality} encoder frozen: its features are cached in {store.path}")

    def items(part: tuple[int, ...], augment: bool) -> TrainingItems:
        part_clips = [clip for clip in clips if clip.actor in part]
        return TrainingItems(RavdessDataset(cache_dir, clips=part_clips), modalities, stores, augment, train_cfg.seed)

    optimizer = build_optimizer(model, train_cfg)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainer = Trainer(model=model, optimizer=optimizer, accelerator=accelerator,
                      train_items=items(split.train, train_cfg.augment), val_items=items(split.val, False),
                      train_cfg=train_cfg, config=config, split=split_info, run_dir=work_dir, log=log,
                      progress=progress, modalities=modalities, num_workers=num_workers, show_progress=show_progress,
                      sync=sync, stop=stop)
    if state is not None:
        trainer.restore(state)
    if train_cfg.use_wandb and accelerator.is_main_process:
        say(log.start_wandb(train_cfg.wandb_project, run_dir.name, config))
    try:
        progress = trainer.fit()
        log.draw_curves()
    finally:
        log.finish()
    if trainer.stopped:
        raise Stopped(_stopped(run_dir, work_dir, sync, accelerator.is_main_process))
    if accelerator.is_main_process:
        _plot_layer_weights(accelerator.unwrap_model(model), work_dir)
    if sync is not None:
        if not sync.finish():
            trained, on_drive = (checkpoint.describe_progress(p) for p in sync.progress())
            raise DriveBehindError(f"training reached {trained}, but the run folder on Drive holds {on_drive}: "
                                   f"{sync.failure}")
        sync.record("finished")
    elif accelerator.is_main_process:
        _record(run_dir, "finished")

    result = TrainResult(
        run_dir=run_dir, best_checkpoint=run_dir / "checkpoints" / "best", last_checkpoint=run_dir / "checkpoints" / "last",
        epochs=progress.epoch, steps=progress.step, best_epoch=progress.best_epoch, best_metric=progress.best_metric,
        metric=train_cfg.early_stopping_metric, stopped_early=progress.bad_epochs >= train_cfg.early_stopping_patience,
        metrics=log.rows,
    )
    say(_report(result))
    return result


def _record(run_dir: Path, state: str) -> None:
    """The sync state of a run folder written directly (no working copy: it holds all that was trained)."""
    progress = checkpoint.read_progress(run_dir / "checkpoints" / "last")
    run_folder.record_sync(run_dir, state, progress, progress)


def _stopped(run_dir: Path, work_dir: Path, sync: Optional[DriveSync], is_main: bool) -> str:
    """After a stop request: copy the run to Drive (when it is there), record the sync state; the one line to show."""
    again = "run 03 again (or the same command) to continue"
    if not is_main:
        return f"stopped; {again}"
    if checkpoint.read_progress(work_dir / "checkpoints" / "last") is None or (sync is not None and not sync.started):
        return f"stopped before training began (the run folder is as it was); {again}"
    if sync is not None:
        sync.record("stopped" if sync.finish() else "training")
        trained, on_drive = sync.progress()
        held = f"Drive holds {checkpoint.describe_progress(on_drive)}"
        if on_drive != trained:
            held += f" ({sync.failure})" if sync.failure else ""
    else:
        _record(run_dir, "stopped")
        trained = checkpoint.read_progress(run_dir / "checkpoints" / "last")
        held = f"{run_dir} holds it"
    return f"stopped at {checkpoint.describe_progress(trained)}; {held}; {again}"


def _plot_layer_weights(model, run_dir: Path) -> None:
    """layer_weights.png: the layer-mix weights of the best checkpoint (of the last weights when a run killed
    while writing it left no readable `best`)."""
    try:
        weights, which = checkpoint.load(run_dir / "checkpoints" / "best").weights, "best checkpoint"
    except CheckpointError:
        weights, which = model.state_dict(), "last weights"
    mixes = layer_mix.learned_weights(model, weights)
    save_png(layer_weights_figure(mixes, subtitle=f"{run_dir.name}, {which}"), run_dir / "layer_weights.png")


def _precision() -> str:
    """bf16 on Ampere or newer (no scaler needed), fp16 with a GradScaler on older CUDA cards, fp32 on CPU."""
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.get_device_capability()[0] >= 8 else "fp16"


def _refuse_restart_over_best(work_dir: Path, run_dir: Path) -> None:
    """A run folder with a `best` but no `last` (deleted, or lost with its spare) cannot resume, and starting it from
    scratch would write over its best checkpoint and metrics: RunFolderError saying how to go on."""
    best = checkpoint.find(work_dir, "best")
    if best is not None:
        raise run_folder.RunFolderError(
            f"run folder {run_dir} has checkpoints/best but no checkpoints/last, so it cannot resume, and starting "
            f"over would write over its best checkpoint and metrics; continue from best in this folder with the same "
            f"command plus --resume_from {run_dir / 'checkpoints' / 'best'} --run_name {run_dir.name} (in train(): "
            "TrainConfig.resume_from and run_name), or train a new run under another --run_name")


def _starting_checkpoint(last: Optional[Path], resume_from: Optional[str],
                         model_cfg: ModelConfig) -> Optional[checkpoint.Checkpoint]:
    """The checkpoint a run starts from (its own `last`, else `resume_from`), checked before any model is built."""
    if last is None and resume_from is None:
        return None
    source = last or Path(resume_from).expanduser()
    ckpt = checkpoint.load(source)
    _refuse_other_preset(source, ckpt.config, model_cfg)
    return ckpt


def _refuse_other_preset(source: Path, saved_config: dict, model_cfg: ModelConfig) -> None:
    saved_preset = saved_config["model"]["preset"]
    if saved_preset != model_cfg.preset:
        raise CheckpointError(f"{source} holds a {saved_preset!r} model, but this run builds {model_cfg.preset!r}")


def _load_start(model, config: dict, ckpt: Optional[checkpoint.Checkpoint],
                resumed: bool) -> tuple[Progress, Optional[dict], str]:
    """Load the starting weights into `model`; returns progress, training state (None: fresh) and a line to print."""
    if ckpt is None:
        return Progress(), None, "starting from scratch"
    if resumed or run_folder.identity(ckpt.config) == run_folder.identity(config):
        checkpoint.load_weights(model, ckpt)
        progress = Progress(**ckpt.progress)
        length_change = _length_change(ckpt.config["train"]["max_epochs"], config["train"]["max_epochs"], progress)
        return progress, ckpt.state, (f"resuming {ckpt.path} at epoch {progress.epoch + 1}, step {progress.step}"
                                      + (f" (batch {progress.batches_done} of the epoch)" if progress.batches_done else "")
                                      + length_change)
    # Another config (e.g. a part thawed for fine-tuning): the saved weights were those trainable
    # under the saved freeze flags, so load them under those flags, then apply this run's.
    for saved in (True, False):
        for part, (section, field) in FREEZE_FIELDS.items():
            frozen = (ckpt.config if saved else config)["model"][section][field]
            model.set_trainable(part, not frozen)
        if saved:
            model.load_trainable_state_dict(ckpt.weights)
    return Progress(), None, f"starting from the weights of {ckpt.path} (fresh optimizer and schedule)"


def _length_change(saved: int, wanted: int, progress: Progress) -> str:
    """What a changed max_epochs does to a resumed run (module docstring); "" when it is unchanged."""
    if saved == wanted:
        return ""
    if progress.epoch >= wanted:
        return (f"\nmax_epochs {saved} -> {wanted}: the run has trained {progress.epoch} epochs already, "
                "so there is nothing more to train")
    return (f"\nmax_epochs {saved} -> {wanted}: the learning-rate schedule is rebuilt for {wanted} epochs (warmup, "
            f"then cosine decay to 0 at the end of epoch {wanted}); from step {progress.step} on, the learning rate "
            "follows it, so it differs from a run started with either length")


def _report(result: TrainResult) -> str:
    why = "early stopping" if result.stopped_early else "max_epochs"
    return "\n".join([
        f"done: {result.epochs} epochs ({why}); best val {result.metric} {result.best_metric:.4f} at epoch {result.best_epoch}",
        f"  best checkpoint: {result.best_checkpoint}",
        f"  last checkpoint: {result.last_checkpoint}",
        f"  metrics: {result.run_dir / 'metrics.csv'} (and metrics.json), curves: {result.run_dir / 'curves.png'}",
        f"  config: {result.run_dir / 'config.json'}, actors per part: {result.run_dir / 'split.json'}",
    ])


STAGE3_PARTS = ("visual_encoder",)


def stage3_config(stage2: TrainConfig, best_checkpoint: Union[str, Path], max_epochs: int, lr: float) -> TrainConfig:
    """Stage 3 of the recipe: fine-tune from stage 2's best weights with the SigLIP2 tower thawed
    (`unfreeze=STAGE3_PARTS`). Half the batch and twice the accumulation (the same clips per optimizer
    step; the thawed tower's activations need the memory), `lr` for the heads, a fresh optimizer and
    schedule of `max_epochs`; the rest as in stage 2."""
    return dataclasses.replace(stage2, max_epochs=max_epochs, batch_size=max(1, stage2.batch_size // 2),
                               grad_accum_steps=stage2.grad_accum_steps * 2, lr=lr,
                               resume_from=str(best_checkpoint))


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

# Checked at parse time: a wrong value stops the command before anything starts.
TRAINING_FLAG_TYPES = {
    "batch_size": cli.POSITIVE_INT, "grad_accum_steps": cli.POSITIVE_INT, "max_epochs": cli.POSITIVE_INT,
    "early_stopping_patience": cli.POSITIVE_INT, "seed": cli.SEED,
    "checkpoint_every_steps": cli.NON_NEGATIVE_INT, "num_workers": cli.NON_NEGATIVE_INT,
    "lr": cli.POSITIVE_FLOAT, "backbone_lr": cli.POSITIVE_FLOAT, "weight_decay": cli.float_range(0),
    "warmup_ratio": cli.float_range(0, 1, high_open=True), "max_grad_norm": cli.POSITIVE_FLOAT,
}
PER_RUN_FLAGS = ("--save_dir", "--run_name", "--resume_from", "--fold", "--unfreeze")


def add_training_flags(parser: argparse.ArgumentParser, per_run: bool = True) -> None:
    """The flags of the model and of its training, shared by `fer_lib.train` and `fer_lib.cv`.

    per_run=False leaves out PER_RUN_FLAGS (cross-validation sets them per fold).
    """
    defaults = TrainConfig()
    paths = parser.add_argument_group("where")
    paths.add_argument("--cache_dir", help="the preprocessing cache (cache/preprocessed)")
    paths.add_argument("--data_dir", help="raw RAVDESS clips, preprocessed into --cache_dir first if needed")
    paths.add_argument("--embedding_dir", help="frozen-encoder feature cache (default: embeddings/ beside the cache)")
    if per_run:
        paths.add_argument("--save_dir", default="runs", help="the folder of run folders (MyDrive/fer/runs in Colab)")
        paths.add_argument("--run_name", help="run folder name (default: from the config, so a rerun resumes)")
        paths.add_argument("--resume_from", help="checkpoint folder to start from (e.g. RUN/checkpoints/best)")
        paths.add_argument("--local_dir", help="write the run folder here first (the machine's fast disk) and copy "
                                               "it to --save_dir on a schedule, e.g. when --save_dir is on Google Drive")
        paths.add_argument("--sync_minutes", type=cli.float_range(0), default=10.0,
                           help="with --local_dir: the most minutes between two copies to --save_dir (what a disconnect can lose)")
    model = parser.add_argument_group("model")
    model.add_argument("--config_type", choices=PRESETS, default=DEFAULT_PRESET, help="model preset")
    if per_run:
        model.add_argument("--unfreeze", nargs="+", choices=tuple(PRETRAINED_PARTS), default=(),
                           help="train these pretrained parts too (e.g. visual_encoder, stage 3)")
    model.add_argument("--label_smoothing", type=cli.float_range(0, 1, high_open=True),
                       help="classifier label smoothing (preset default: 0)")
    model.add_argument("--modality_dropout", type=cli.float_range(0, 1, high_open=True),
                       help="probability of dropping one modality per clip (preset default)")
    train_flags = parser.add_argument_group("training")
    for name, kind in TRAINING_FLAG_TYPES.items():
        train_flags.add_argument(f"--{name}", type=kind, default=getattr(defaults, name))
    train_flags.add_argument("--early_stopping_metric", choices=("macro_f1", "uar"), default=defaults.early_stopping_metric)
    train_flags.add_argument("--modalities", choices=tuple(modality_names.FLAGS), default=defaults.modalities)
    if per_run:
        train_flags.add_argument("--fold", type=cli.int_range(0, DEFAULT_FOLDS - 1),
                                 help="actor fold (default: the fixed actor split)")
    train_flags.add_argument("--use_wandb", action="store_true", help="log to W&B (offline without WANDB_API_KEY)")
    train_flags.add_argument("--no_augment", action="store_true", help="no train-time augmentation")
    train_flags.add_argument("--no_embedding_cache", action="store_true",
                             help="run frozen encoders every epoch (needed to augment their raw input)")
    train_flags.add_argument("--allow_other_frozen_weights", action="store_true",
                             help="resume although the pretrained weights differ from those the checkpoint was trained with")


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    model_cfg = get_preset(args.config_type)
    if args.label_smoothing is not None:
        model_cfg.classifier.label_smoothing = args.label_smoothing
    if args.modality_dropout is not None:
        model_cfg.fusion.modality_dropout = args.modality_dropout
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train_cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields},
                            augment=not args.no_augment, embedding_cache=not args.no_embedding_cache)
    return model_cfg, train_cfg


@cli.command(interrupted="run the same command again to resume from the last checkpoint")
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_training_flags(parser)
    args = parser.parse_args(argv)
    model_cfg, train_cfg = configs_from_args(args)
    train(args.cache_dir, args.save_dir, model_cfg, train_cfg, data_dir=args.data_dir, run_name=args.run_name,
          unfreeze=args.unfreeze, embedding_dir=args.embedding_dir, local_dir=args.local_dir,
          sync_minutes=args.sync_minutes,
          allow_other_frozen_weights=args.allow_other_frozen_weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
