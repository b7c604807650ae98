"""Train an emotion model: `train(...)` in a notebook, `python -m fer_lib.train` on the command line.

    python -m fer_lib.train --data_dir CACHE --save_dir RUNS --config_type {tiny,lightweight,full}
        [--batch_size 8] [--grad_accum_steps 2] [--max_epochs 50] [--lr 1e-4] [--early_stopping_patience 15]
        [--use_wandb] [--resume_from CKPT [--unfreeze visual_encoder]] [--modalities av|a|v] [--fold K] [--seed 42]

`--data_dir` is the preprocessing cache (`python -m fer_lib.preprocess`). Given a folder of raw clips
instead, pass `--cache_dir` and it is preprocessed there first. Everything goes to one run folder,
`<save_dir>/<run_name>/` (layout in drive_layout.md, checkpoint files in fer_lib/training/checkpoint.py):
config.json, split.json, checkpoints/last/, checkpoints/best/, metrics.csv, metrics.json, curves.png.

Where a run starts:
- its folder already has `checkpoints/last`: it continues from there (the same command again resumes
  after a disconnect: same epoch, step, optimizer state, data order and RNG streams);
- else `--resume_from CKPT` with the same config (see run_folder.py for what "same" ignores): it
  continues that checkpoint's training state in this folder;
- else `--resume_from CKPT` with another config (e.g. `--unfreeze visual_encoder` for stage 3, or
  another lr): it starts from those weights with a fresh optimizer and schedule, from epoch 0;
- else from scratch.
A changed config gets a new default folder name, so earlier results are never overwritten; an
explicit `--run_name` whose folder holds another config is refused.

Several GPUs: the same command under `torchrun --nproc_per_node N -m fer_lib.train ...` or
`accelerate launch --num_processes N -m fer_lib.train ...` runs DDP; `--batch_size` is per process.
Process 0 writes all files.

Bad input (a config value, a missing cache, a checkpoint of another preset or architecture, a run
folder of another config) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed

from fer_lib.config import MODALITY_FLAGS, PRESETS, ConfigError, ModelConfig, TrainConfig, get_preset
from fer_lib.data.dataset import RavdessDataset, default_num_workers, list_cached_clips
from fer_lib.data.index import DataError
from fer_lib.data.splits import get_split
from fer_lib.errors import one_line
from fer_lib.models import BRANCHES, CheckpointMismatchError, PretrainedLoadError, build_model
from fer_lib.preprocess import MANIFEST, manifest_hash, preprocess
from fer_lib.training import checkpoint, embedding_cache, run_folder
from fer_lib.training.checkpoint import CheckpointError
from fer_lib.training.items import TrainingItems
from fer_lib.training.logging import MetricsLog
from fer_lib.training.loop import Progress, Trainer
from fer_lib.training.optim import build_optimizer
from fer_lib.training.run_folder import RunConflictError

# Which config field freezes each of the model's BRANCHES.
FREEZE_FIELDS = {"audio_encoder": ("audio", "freeze_encoder"), "visual_encoder": ("visual", "freeze_encoder"),
                 "backbone": ("fusion", "freeze_backbone")}
USER_ERRORS = (ConfigError, DataError, CheckpointError, CheckpointMismatchError, PretrainedLoadError, RunConflictError)


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


def train(data_dir: Union[str, Path], save_dir: Union[str, Path], model_config: Union[str, ModelConfig] = "tiny",
          train_config: Optional[TrainConfig] = None, *, run_name: Optional[str] = None,
          unfreeze: Iterable[str] = (), cache_dir: Optional[Union[str, Path]] = None,
          embedding_dir: Optional[Union[str, Path]] = None, show_progress: bool = True) -> TrainResult:
    """Train (or resume) one run; see the module docstring.

    model_config: a preset name or a ModelConfig. train_config: TrainConfig (its `resume_from` names a
    checkpoint folder to start from). unfreeze: branches ("audio_encoder", "visual_encoder",
    "backbone") to train although the preset freezes them. cache_dir: where raw clips in `data_dir`
    are preprocessed to. embedding_dir: where frozen-encoder features are cached (default: `embeddings/`
    beside the preprocessing cache, i.e. `cache/embeddings/` in the Drive layout).
    """
    model_cfg = get_preset(model_config) if isinstance(model_config, str) else copy.deepcopy(model_config)
    train_cfg = dataclasses.replace(train_config or TrainConfig())
    for branch in unfreeze:
        if branch not in FREEZE_FIELDS:
            raise ConfigError(f"cannot unfreeze {branch!r}; choose from {tuple(FREEZE_FIELDS)}")
        section, field = FREEZE_FIELDS[branch]
        setattr(getattr(model_cfg, section), field, False)
    model_cfg.validate()
    train_cfg.validate()

    accelerator = Accelerator(
        mixed_precision=_precision(), cpu=not torch.cuda.is_available(),
        # Parameters that get no gradient in a step are normal here (the "missing" tokens, the branch of
        # an unused modality), and DDP must be told to expect them.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    say = accelerator.print
    with accelerator.main_process_first():
        data_dir = _cache_folder(Path(data_dir).expanduser(), cache_dir)
    clips = list_cached_clips(data_dir)
    split = get_split(train_cfg.fold, {clip.actor for clip in clips})
    split_info = {**split.as_dict(), "fold": train_cfg.fold, "manifest_hash": manifest_hash(data_dir)}
    config = run_folder.resolved_config(model_cfg, train_cfg)
    run_dir = Path(save_dir).expanduser() / (run_name or run_folder.default_run_name(config))
    run_folder.check(run_dir, config, split_info)
    with accelerator.main_process_first():  # process 0 repairs an interrupted checkpoint swap first
        last = checkpoint.find(run_dir)
    start = _starting_checkpoint(last, train_cfg.resume_from, model_cfg)
    set_seed(train_cfg.seed)
    model = build_model(model_cfg)
    progress, state, origin = _load_start(model, config, start, resumed=last is not None)
    if accelerator.is_main_process:  # only now: a command refused above leaves no folder behind
        run_folder.write(run_dir, config, split_info)
    say(f"run folder: {run_dir}\n{split.describe()}\n"
        f"device: {accelerator.device} x {accelerator.num_processes}, precision {accelerator.mixed_precision}")
    if progress.world_size != accelerator.num_processes and progress.batches_done:
        say(f"the checkpoint was saved by {progress.world_size} processes: epoch {progress.epoch + 1} restarts")
        progress = dataclasses.replace(progress, batches_done=0, loss_sum=0.0, correct=0.0, seen=0.0)
    say(origin)

    model.to(accelerator.device)
    modalities = MODALITY_FLAGS[train_cfg.modalities]
    num_workers = default_num_workers() if train_cfg.num_workers is None else train_cfg.num_workers
    embedding_root = Path(embedding_dir).expanduser() if embedding_dir else data_dir.parent / "embeddings"
    stores = {
        branch: embedding_cache.open_or_build(branch, embedding_root, model, model_cfg, data_dir,
                                              split_info["manifest_hash"], accelerator, train_cfg.batch_size,
                                              num_workers, show_progress)
        for branch in embedding_cache.cached_branches(model, modalities, train_cfg.embedding_cache)
    }
    for branch, store in stores.items():
        say(f"{branch} encoder frozen: its features are cached in {store.path}")

    def items(part: tuple[int, ...], augment: bool) -> TrainingItems:
        part_clips = [clip for clip in clips if clip.actor in part]
        return TrainingItems(RavdessDataset(data_dir, clips=part_clips), modalities, stores, augment, train_cfg.seed)

    optimizer = build_optimizer(model, train_cfg)
    model, optimizer = accelerator.prepare(model, optimizer)
    log = MetricsLog(run_dir, epochs_done=progress.epoch)
    trainer = Trainer(model=model, optimizer=optimizer, accelerator=accelerator,
                      train_items=items(split.train, train_cfg.augment), val_items=items(split.val, False),
                      train_cfg=train_cfg, config=config, split=split_info, run_dir=run_dir, log=log,
                      progress=progress, modalities=modalities, num_workers=num_workers, show_progress=show_progress)
    if state is not None:
        trainer.restore(state)
    if train_cfg.use_wandb and accelerator.is_main_process:
        say(log.start_wandb(train_cfg.wandb_project, run_dir.name, config))
    try:
        progress = trainer.fit()
    finally:
        log.finish()

    result = TrainResult(
        run_dir=run_dir, best_checkpoint=run_dir / "checkpoints" / "best", last_checkpoint=run_dir / "checkpoints" / "last",
        epochs=progress.epoch, steps=progress.step, best_epoch=progress.best_epoch, best_metric=progress.best_metric,
        metric=train_cfg.early_stopping_metric, stopped_early=progress.bad_epochs >= train_cfg.early_stopping_patience,
        metrics=log.rows,
    )
    say(_report(result))
    return result


def _precision() -> str:
    """bf16 on Ampere or newer (no scaler needed), fp16 with a GradScaler on older CUDA cards, fp32 on CPU."""
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.get_device_capability()[0] >= 8 else "fp16"


def _cache_folder(data_dir: Path, cache_dir: Optional[Union[str, Path]]) -> Path:
    """The preprocessing cache to train on: `data_dir` itself, or raw clips in it preprocessed into `cache_dir`."""
    if (data_dir / MANIFEST).is_file():
        return data_dir
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir}")
    if cache_dir is None:
        raise DataError(f"{data_dir} is not a preprocessing cache (no {MANIFEST}); if it holds raw clips, pass "
                        f"--cache_dir DIR to preprocess them there first (or run python -m fer_lib.preprocess)")
    preprocess(data_dir, cache_dir)
    return Path(cache_dir).expanduser()


def _starting_checkpoint(last: Optional[Path], resume_from: Optional[str],
                         model_cfg: ModelConfig) -> Optional[checkpoint.Checkpoint]:
    """The checkpoint a run starts from (its own `last`, else `resume_from`), checked before any model is built."""
    if last is None and resume_from is None:
        return None
    source = last or Path(resume_from).expanduser()
    ckpt = checkpoint.load(source)
    saved_preset = ckpt.config["model"]["preset"]
    if saved_preset != model_cfg.preset:
        raise CheckpointError(f"{source} holds a {saved_preset!r} model, but this run builds {model_cfg.preset!r}")
    return ckpt


def _load_start(model, config: dict, ckpt: Optional[checkpoint.Checkpoint],
                resumed: bool) -> tuple[Progress, Optional[dict], str]:
    """Load the starting weights into `model`; returns progress, training state (None: fresh) and a line to print."""
    if ckpt is None:
        return Progress(), None, "starting from scratch"
    if resumed or run_folder.identity(ckpt.config) == run_folder.identity(config):
        model.load_trainable_state_dict(ckpt.weights)
        progress = Progress(**ckpt.progress)
        return progress, ckpt.state, (f"resuming {ckpt.path} at epoch {progress.epoch + 1}, step {progress.step}"
                                      + (f" (batch {progress.batches_done} of the epoch)" if progress.batches_done else ""))
    # Another config (e.g. a branch thawed for fine-tuning): the saved weights were those trainable
    # under the saved freeze flags, so load them under those flags, then apply this run's.
    for saved in (True, False):
        for branch, (section, field) in FREEZE_FIELDS.items():
            frozen = (ckpt.config if saved else config)["model"][section][field]
            model.set_trainable(branch, not frozen)
        if saved:
            model.load_trainable_state_dict(ckpt.weights)
    return Progress(), None, f"starting from the weights of {ckpt.path} (fresh optimizer and schedule)"


def _report(result: TrainResult) -> str:
    why = "early stopping" if result.stopped_early else "max_epochs"
    return "\n".join([
        f"done: {result.epochs} epochs ({why}); best val {result.metric} {result.best_metric:.4f} at epoch {result.best_epoch}",
        f"  best checkpoint: {result.best_checkpoint}",
        f"  last checkpoint: {result.last_checkpoint}",
        f"  metrics: {result.run_dir / 'metrics.csv'} (and metrics.json), curves: {result.run_dir / 'curves.png'}",
        f"  config: {result.run_dir / 'config.json'}, actors per part: {result.run_dir / 'split.json'}",
    ])


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m fer_lib.train", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    paths = parser.add_argument_group("where")
    paths.add_argument("--data_dir", required=True, help="the preprocessing cache (or raw clips, with --cache_dir)")
    paths.add_argument("--save_dir", default="runs", help="the folder of run folders (MyDrive/fer/runs in Colab)")
    paths.add_argument("--run_name", help="run folder name (default: from the config, so a rerun resumes)")
    paths.add_argument("--cache_dir", help="preprocess raw clips of --data_dir into this folder first")
    paths.add_argument("--embedding_dir", help="frozen-encoder feature cache (default: embeddings/ beside the cache)")
    paths.add_argument("--resume_from", help="checkpoint folder to start from (e.g. RUN/checkpoints/best)")
    model = parser.add_argument_group("model")
    model.add_argument("--config_type", choices=PRESETS, default="lightweight", help="model preset")
    model.add_argument("--unfreeze", nargs="+", choices=tuple(BRANCHES), default=(),
                       help="train these pretrained parts too (e.g. visual_encoder, stage 3)")
    model.add_argument("--label_smoothing", type=float, help="classifier label smoothing (preset default: 0)")
    model.add_argument("--modality_dropout", type=float, help="probability of dropping one modality per clip")
    train_flags = parser.add_argument_group("training")
    for name in ("batch_size", "grad_accum_steps", "max_epochs", "early_stopping_patience", "seed",
                 "checkpoint_every_steps", "num_workers"):
        train_flags.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    for name in ("lr", "backbone_lr", "weight_decay", "warmup_ratio", "max_grad_norm"):
        train_flags.add_argument(f"--{name}", type=float, default=getattr(defaults, name))
    train_flags.add_argument("--early_stopping_metric", choices=("macro_f1", "uar"), default=defaults.early_stopping_metric)
    train_flags.add_argument("--modalities", choices=tuple(MODALITY_FLAGS), default=defaults.modalities)
    train_flags.add_argument("--fold", type=int, help="actor fold (default: the fixed actor split)")
    train_flags.add_argument("--use_wandb", action="store_true", help="log to W&B (offline without WANDB_API_KEY)")
    train_flags.add_argument("--no_augment", action="store_true", help="no train-time augmentation")
    train_flags.add_argument("--no_embedding_cache", action="store_true",
                             help="run frozen encoders every epoch (needed to augment their input)")
    return parser.parse_args(argv)


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


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        model_cfg, train_cfg = configs_from_args(args)
        train(args.data_dir, args.save_dir, model_cfg, train_cfg, run_name=args.run_name, unfreeze=args.unfreeze,
              cache_dir=args.cache_dir, embedding_dir=args.embedding_dir)
    except USER_ERRORS as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
