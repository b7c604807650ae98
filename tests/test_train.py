"""Training, end to end on real files: synthetic mp4 -> preprocessing cache -> tiny model -> checkpoints on disk.

Most tests train the `tiny` preset for an epoch or two on the shared 10-clip cache of conftest.py
(train = actor 1, 4 clips; val = actor 2, 3 clips). The learnability tests build their own caches
(module fixture `signal_caches`, 49 clips each): the label carried by both modalities, by the audio
only, or by the face only.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_lib.config import ModelConfig, TrainConfig, from_dict, get_preset
from fer_lib.metrics import classification_metrics
from fer_lib.models import CheckpointMismatchError, build_model
from fer_lib.train import main, train
from fer_lib.training import checkpoint, drive_sync
from fer_lib.training.checkpoint import CheckpointError
from fer_lib.training.drive_sync import DriveSync
from fer_lib.training.logging import COLUMNS, MetricsLog
from fer_lib.training.loop import Trainer
from fer_lib.training.sampler import EpochBatches

REPO = Path(__file__).resolve().parents[1]


def quick_config(**overrides) -> TrainConfig:
    """A tiny run: one clip per batch, no loader workers, no warmup."""
    base = dict(batch_size=1, grad_accum_steps=1, max_epochs=1, lr=1e-3, num_workers=0, warmup_ratio=0.0,
                augment=False, early_stopping_patience=50, seed=7)
    return TrainConfig(**{**base, **overrides})


def without_dropout(cfg: ModelConfig) -> ModelConfig:
    cfg.audio.dropout = cfg.visual.dropout = cfg.classifier.dropout = 0.0
    return cfg


def frozen_encoders(cfg: ModelConfig) -> ModelConfig:
    cfg.audio.freeze_encoder = cfg.visual.freeze_encoder = True
    return cfg


def metrics_without_time(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in json.loads((run_dir / "metrics.json").read_text())]


# --------------------------------------------------------------------------------------------
# Pure pieces
# --------------------------------------------------------------------------------------------


def test_metrics_war_uar_macro_f1():
    labels = [0, 0, 0, 0, 1, 1]
    predictions = [0, 0, 0, 0, 0, 1]
    m = classification_metrics(labels, predictions)
    assert m["war"] == pytest.approx(5 / 6)
    assert m["uar"] == pytest.approx((1.0 + 0.5) / 2)
    f1_class0 = 2 * (4 / 5) * 1.0 / (4 / 5 + 1.0)
    f1_class1 = 2 * 1.0 * 0.5 / 1.5
    assert m["macro_f1"] == pytest.approx((f1_class0 + f1_class1) / 2)
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0])


def test_data_order_is_a_function_of_seed_and_epoch():
    sampler = EpochBatches(10, batch_size=3, seed=5)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(10)) and epoch0 != epoch1
    sampler.set_epoch(0, skip=2)
    assert list(sampler) == epoch0[2:] and len(sampler) == 2  # resume mid-epoch: the same remaining batches
    again = EpochBatches(10, batch_size=3, seed=5)
    again.set_epoch(1)
    assert list(again) == epoch1

    shards = [EpochBatches(10, 3, seed=5, rank=r, world_size=3) for r in range(3)]  # DDP: padded, equal shares
    for shard in shards:
        shard.set_epoch(0)
    assert {len(list(s)) for s in shards} == {2}
    assert set(i for s in shards for i in s.indices()) == set(range(10))
    evaluation = [EpochBatches(10, 3, shuffle=False, rank=r, world_size=3, pad=False) for r in range(3)]
    assert sorted(i for s in evaluation for i in s.indices()) == list(range(10))  # each clip exactly once


def test_wandb_never_prompts_offline_without_a_key(tmp_path, monkeypatch):
    calls = {}

    class FakeWandb:
        @staticmethod
        def login(**kwargs):
            calls["login"] = kwargs

        @staticmethod
        def init(**kwargs):
            calls["init"] = kwargs
            return None

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    line = MetricsLog(tmp_path).start_wandb("proj", "run1", {"a": 1})
    assert calls["init"]["mode"] == "offline" and "login" not in calls and "offline" in line
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    MetricsLog(tmp_path).start_wandb("proj", "run1", {"a": 1})
    assert calls["init"]["mode"] == "online" and calls["login"]["key"] == "k" * 40
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed: a note, no exception
    assert "not installed" in MetricsLog(tmp_path).start_wandb("proj", "run1", {})


def test_curves_are_redrawn_at_most_every_30_s_and_hold_every_epoch_at_the_end(tmp_path, monkeypatch):
    """Drawing curves.png costs about a second on a CPU, more than an epoch of a tiny run: fast epochs redraw it
    every CURVES_EVERY_S, and the end of training draws the epochs since."""
    from fer_lib.training import logging as metrics_logging

    drawn = []
    figure = metrics_logging.curves_figure
    monkeypatch.setattr(metrics_logging, "curves_figure", lambda rows: drawn.append(len(rows)) or figure(rows))
    log = MetricsLog(tmp_path)
    row = dict.fromkeys(metrics_logging.COLUMNS, 0.5)
    for epoch in (1, 2, 3):
        log.log({**row, "epoch": epoch})
    assert drawn == [1] and len(json.loads((tmp_path / "metrics.json").read_text())) == 3  # metrics: every epoch
    log.draw_curves()
    log.draw_curves()  # nothing new: not drawn again
    assert drawn == [1, 3] and (tmp_path / "curves.png").is_file()


# --------------------------------------------------------------------------------------------
# One short real run, inspected from several sides
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_run(synthetic_cache, tmp_path_factory):
    save = tmp_path_factory.mktemp("runs")
    result = train(synthetic_cache.root, save, "tiny", quick_config(max_epochs=2, augment=True), show_progress=False)
    return result


def test_run_folder_layout_metrics_and_checkpoints(short_run, synthetic_cache):
    run = short_run.run_dir
    for name in ("config.json", "split.json", "metrics.csv", "metrics.json", "curves.png", "layer_weights.png"):
        assert (run / name).is_file(), name
    for png in ("curves.png", "layer_weights.png"):  # which encoder layers the model uses, after training
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert header.split(",") == list(COLUMNS) and len(rows) == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics] == [1, 2] and all(0 <= row["val_acc"] <= 1 for row in metrics)

    split = json.loads((run / "split.json").read_text())
    assert split["train"] == [1] and split["val"] == [2] and split["test"] == [3]
    assert split["manifest_hash"] == synthetic_cache.summary["manifest_hash"]

    for name in ("last", "best"):
        folder = run / "checkpoints" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(checkpoint.FILES + (checkpoint.CHECKSUMS,))
        state = torch.load(folder / checkpoint.STATE, weights_only=True)  # no pickled code needed
        assert {"optimizer", "scheduler", "scaler", "rng"} <= set(state)
    ckpt = checkpoint.load(run / "checkpoints" / "last")
    assert ckpt.progress["epoch"] == 2 and ckpt.progress["step"] == 8 and ckpt.progress["batches_done"] == 0
    model_cfg = from_dict(ModelConfig, ckpt.config["model"])
    model = build_model(model_cfg)
    model.load_trainable_state_dict(ckpt.weights)  # strict: every trainable weight is there
    assert set(ckpt.weights) == set(model.trainable_state_dict())
    assert TrainConfig(**ckpt.config["train"]).max_epochs == 2
    hidden = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert hidden == [checkpoint.SPARE]  # the slot the next save is written into; no staging left


@contextmanager
def file_size_limit(nbytes: int):
    """Writes past `nbytes` fail for real, with EFBIG from the kernel, as writes to a full disk fail with ENOSPC."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the default action would kill the process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_write_keeps_the_previous_checkpoint(short_run, tmp_path):
    """The weights cannot be written (safetensors raises its own error type, torch.save a RuntimeError):
    one line, and `last` and `best` as they were."""
    run = Path(shutil.copytree(short_run.run_dir, tmp_path / "run"))
    before = {name: checkpoint.load(run / "checkpoints" / name) for name in ("last", "best")}
    changed = dataclasses.replace(before["last"], weights={k: v + 1 for k, v in before["last"].weights.items()},
                                  progress={**before["last"].progress, "step": 999})
    weights_size = (run / "checkpoints" / "last" / checkpoint.WEIGHTS).stat().st_size
    with file_size_limit(weights_size // 2), pytest.raises(CheckpointError) as error:
        checkpoint.save(changed, run, ("last", "best"))
    message = str(error.value)
    assert "previous 'last' is kept" in message and "File too large" in message and "\n" not in message
    for name, old in before.items():
        after = checkpoint.load(run / "checkpoints" / name)
        assert after.progress == old.progress
        assert all(torch.equal(after.weights[k], old.weights[k]) for k in old.weights)

    # A crash between the renames that make the spare `last` leaves `.last.retired`: the new one is put in place.
    checkpoint._write(changed, run / "checkpoints" / checkpoint.SPARE)
    (run / "checkpoints" / "last").rename(run / "checkpoints" / ".last.retired")
    assert checkpoint.find(run) == run / "checkpoints" / "last"
    assert checkpoint.load(run / "checkpoints" / "last").progress["step"] == 999
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [checkpoint.SPARE, "best", "last"]


def test_rerun_continues_and_refuses_another_config(short_run, synthetic_cache, capsys):
    run = short_run.run_dir
    args = ["--cache_dir", str(synthetic_cache.root), "--save_dir", str(run.parent), "--config_type", "tiny",
            "--batch_size", "1", "--grad_accum_steps", "1", "--max_epochs", "2", "--lr", "1e-3", "--num_workers", "0",
            "--warmup_ratio", "0", "--early_stopping_patience", "50", "--seed", "7"]
    before = (run / "metrics.json").read_text()
    assert main(args) == 0  # the same command (augmentation was on there too): finished, nothing to do
    out = capsys.readouterr().out
    assert f"run folder: {run}" in out and "resuming" in out and "best checkpoint" in out
    assert (run / "metrics.json").read_text() == before

    assert main(args + ["--run_name", run.name, "--lr", "5e-4"]) == 2  # another config into this folder
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "lr" in err and "\n" not in err and "Traceback" not in err
    assert (run / "metrics.json").read_text() == before

    assert main(args + ["--batch_size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert main(args[:1] + [str(run / "nowhere")] + args[2:]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(args + ["--config_type", "lightweight", "--resume_from", str(run / "checkpoints" / "best")]) == 2
    assert "holds a 'tiny' model" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_is_refused(short_run, synthetic_cache, tmp_path):
    other = get_preset("tiny")
    other.classifier.hidden_dims = (32,)
    with pytest.raises(CheckpointMismatchError):
        train(synthetic_cache.root, tmp_path, other,
              quick_config(resume_from=str(short_run.run_dir / "checkpoints" / "best")), show_progress=False)


# --------------------------------------------------------------------------------------------
# Gradient accumulation, resume, warm start
# --------------------------------------------------------------------------------------------


def test_accumulation_normalises_the_last_partial_window(synthetic_cache, tmp_path, monkeypatch):
    """4 batches, accumulation 3: windows of 3 and 1; each step's gradient is the mean over its own window."""
    model_cfg = without_dropout(get_preset("tiny"))
    recorded = []
    real_step = Trainer._optimizer_step

    def record(self):
        model = self.accelerator.unwrap_model(self.model)
        recorded.append(({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                         {k: v.clone() for k, v in model.state_dict().items()}))
        real_step(self)

    monkeypatch.setattr(Trainer, "_optimizer_step", record)
    cfg = quick_config(grad_accum_steps=3, modalities="a")
    result = train(synthetic_cache.root, tmp_path, model_cfg, cfg, show_progress=False)
    assert len(recorded) == 2  # 2 optimizer steps for 4 batches

    # Recompute each window's mean gradient from the same weights and the same clips, in the same order.
    from fer_lib.data.dataset import RavdessDataset, collate
    from fer_lib.training.items import TrainingItems

    split = json.loads((result.run_dir / "split.json").read_text())
    dataset = RavdessDataset(synthetic_cache.root, actors=split["train"])
    items = TrainingItems(dataset, ("audio",), {}, augment=False, seed=cfg.seed)
    order = EpochBatches(len(dataset), 1, seed=cfg.seed).indices()
    for (grads, weights), window in zip(recorded, (order[:3], order[3:])):
        model = build_model(model_cfg)
        model.load_state_dict(weights)
        model.train()
        loss = sum(model(collate([items[(0, i)]]), ("audio",)).loss for i in window) / len(window)
        loss.backward()
        for name, param in model.named_parameters():
            if name in grads:
                torch.testing.assert_close(grads[name], param.grad, rtol=1e-4, atol=1e-6 * param.grad.abs().max().item())


def test_resume_mid_epoch_matches_an_uninterrupted_run(synthetic_cache, tmp_path, monkeypatch):
    """Crash during epoch 2 after a mid-epoch checkpoint; rerunning ends with exactly the same metrics and weights."""
    cfg = quick_config(max_epochs=2, augment=True, checkpoint_every_steps=1)
    model_cfg = get_preset("tiny")
    model_cfg.fusion.modality_dropout = 0.3  # the RNG of the model's own draws must resume too
    whole = train(synthetic_cache.root, tmp_path / "whole", model_cfg, cfg, show_progress=False)

    real_step = Trainer._optimizer_step
    calls = {"n": 0}

    def crash_at_step_7(self):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2, batch 3 of 4: the checkpoint after batch 2 is the last one
            raise RuntimeError("injected crash")
        real_step(self)

    monkeypatch.setattr(Trainer, "_optimizer_step", crash_at_step_7)
    with pytest.raises(RuntimeError, match="injected crash"):
        train(synthetic_cache.root, tmp_path / "split", model_cfg, cfg, show_progress=False)
    monkeypatch.undo()
    run = tmp_path / "split" / whole.run_dir.name
    saved = checkpoint.load(run / "checkpoints" / "last").progress
    assert (saved["epoch"], saved["batches_done"], saved["step"]) == (1, 2, 6)

    resumed = train(synthetic_cache.root, tmp_path / "split", model_cfg, cfg, show_progress=False)
    assert resumed.run_dir == run
    assert metrics_without_time(run) == metrics_without_time(whole.run_dir)
    a = checkpoint.load(whole.run_dir / "checkpoints" / "last")
    b = checkpoint.load(run / "checkpoints" / "last")
    assert a.progress == b.progress
    for name in a.weights:
        assert torch.equal(a.weights[name], b.weights[name]), name


def test_warm_start_with_a_thawed_encoder(synthetic_cache, tmp_path, capsys):
    """Stage 3: start from a checkpoint trained with the visual encoder frozen, now training it too."""
    stage2_cfg = get_preset("tiny")
    stage2_cfg.visual.freeze_encoder = True
    stage2 = train(synthetic_cache.root, tmp_path, stage2_cfg, quick_config(modalities="v"),
                   embedding_dir=tmp_path / "embeddings", show_progress=False)
    source = checkpoint.load(stage2.best_checkpoint)

    stage3 = train(synthetic_cache.root, tmp_path, stage2_cfg,
                   quick_config(modalities="v", lr=1e-12, backbone_lr=1e-12, resume_from=str(stage2.best_checkpoint)),
                   unfreeze=("visual_encoder",), embedding_dir=tmp_path / "embeddings", show_progress=False)
    assert "starting from the weights of" in capsys.readouterr().out
    assert stage3.run_dir != stage2.run_dir and stage3.epochs == 1
    config = json.loads((stage3.run_dir / "config.json").read_text())
    assert config["model"]["visual"]["freeze_encoder"] is False
    assert config["train"]["resume_from"] == str(stage2.best_checkpoint)
    after = checkpoint.load(stage3.last_checkpoint).weights
    assert after.keys() == source.weights.keys()  # the tiny tower is random-init, so it was saved frozen too
    for name, value in source.weights.items():  # lr ~ 0: the run started from exactly these weights
        torch.testing.assert_close(after[name], value, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# Embedding cache
# --------------------------------------------------------------------------------------------


def test_frozen_encoders_run_once_per_clip(synthetic_cache, tmp_path, monkeypatch):
    model_cfg = frozen_encoders(get_preset("tiny"))
    cfg = quick_config(augment=True)  # augmentation is on, but not for cached branches
    embeddings = tmp_path / "embeddings"
    train(synthetic_cache.root, tmp_path / "runs", model_cfg, cfg, embedding_dir=embeddings, show_progress=False)
    stores = sorted(embeddings.iterdir())
    assert [p.name.split("-")[0] for p in stores] == ["audio", "visual"]
    n_clips = synthetic_cache.summary["cached"]
    visual = np.load(stores[1] / "features.npy", mmap_mode="r")
    assert visual.dtype == np.float16 and visual.shape[:3] == (n_clips, 2, 16)  # clips, mixed layers, frames

    # The stored features are the encoder's output for that clip.
    from fer_lib.data.dataset import RavdessDataset, collate

    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg).eval()
    meta = json.loads((stores[1] / "meta.json").read_text())
    item = collate([RavdessDataset(synthetic_cache.root).__getitem__(0)])
    with torch.no_grad():
        expected = model.visual.forward_features(item["frames"], item["landmarks"])[0]
    row = meta["stems"].index(Path(item["path"][0]).stem)
    torch.testing.assert_close(torch.from_numpy(np.array(visual[row])).float(), expected, atol=2e-2, rtol=1e-2)

    # Augmentation still acts with the cache on: each epoch masks a cached clip's features differently,
    # the same way again for the same (seed, epoch, clip), and not at all without augmentation.
    from fer_lib.training.embedding_cache import FeatureStore
    from fer_lib.training.items import TrainingItems

    cached = {p.name.split("-")[0]: FeatureStore(p) for p in stores}
    items = TrainingItems(RavdessDataset(synthetic_cache.root), ("audio", "visual"), cached, augment=True, seed=1)
    plain = TrainingItems(RavdessDataset(synthetic_cache.root), ("audio", "visual"), cached, augment=False, seed=1)
    for key in ("audio_features", "visual_features"):
        epoch0, epoch1, again = items[(0, 0)][key], items[(1, 0)][key], items[(0, 0)][key]
        assert not torch.equal(epoch0, epoch1) and torch.equal(epoch0, again)
        assert torch.equal(plain[(0, 0)][key], plain[(1, 0)][key])

    # Another run reuses the stores and never calls an encoder.
    def fail(*args, **kwargs):
        raise AssertionError("a frozen encoder ran although its features are cached")

    from fer_lib.models.audio import AudioBranch
    from fer_lib.models.visual import VisualBranch

    monkeypatch.setattr(AudioBranch, "forward_features", fail)
    monkeypatch.setattr(VisualBranch, "forward_features", fail)
    again = train(synthetic_cache.root, tmp_path / "runs", model_cfg, dataclasses.replace(cfg, max_epochs=2),
                  run_name="again", embedding_dir=embeddings, show_progress=False)
    assert again.epochs == 2 and sorted(embeddings.iterdir()) == stores
    # Other encoder weights (another seed: another random init) never read these features.
    monkeypatch.undo()
    train(synthetic_cache.root, tmp_path / "runs", model_cfg, dataclasses.replace(cfg, seed=8),
          embedding_dir=embeddings, show_progress=False)
    assert len(list(embeddings.iterdir())) == 4


# --------------------------------------------------------------------------------------------
# The working copy on the runtime's disk and the run folder on Drive
# --------------------------------------------------------------------------------------------


class Clock:
    """Minutes that pass only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now * 60


def inodes(folder: Path) -> set[int]:
    """The files under `folder`, by identity: a file deleted or replaced by a rename changes the set."""
    return {p.stat().st_ino for p in folder.rglob("*") if p.is_file()}


def test_drive_copy_follows_the_schedule_in_place(short_run, tmp_path):
    """Checkpoints every 3 minutes, a copy at most every 10: at minutes 9 and 18 (the checkpoint after
    would be more than 10 minutes after the last copy), and at the end; no file on Drive is ever deleted."""
    work, drive = tmp_path / "local" / "run", tmp_path / "drive" / "run"
    shutil.copytree(short_run.run_dir, work)
    drive.mkdir(parents=True)
    shutil.copy(work / "config.json", drive)  # a run folder that exists on Drive (not a new run)
    clock, warnings = Clock(), []
    sync = DriveSync(work, drive, every_minutes=10, clock=clock, warn=warnings.append)
    sync.start()  # the working copy is ahead: copied at once
    ckpt = checkpoint.load(work / "checkpoints" / "last")
    assert checkpoint.progress_of(drive / "checkpoints" / "last") == checkpoint.progress_of(work / "checkpoints" / "last")

    copied_at, drive_inodes = [], None
    for minute in range(3, 31, 3):
        clock.now = minute
        step = 100 + minute
        checkpoint.save(dataclasses.replace(ckpt, progress={**ckpt.progress, "epoch": minute, "step": step}), work)
        sync.after_save(epoch=minute)
        if checkpoint.load(drive / "checkpoints" / "last").progress["step"] == step:
            copied_at.append(minute)
            if drive_inodes is not None:  # every checkpoint file rewritten in place, none deleted or replaced
                assert inodes(drive / "checkpoints") == drive_inodes
            drive_inodes = inodes(drive / "checkpoints")
    assert copied_at == [9, 18, 27]
    assert sync.finish() and checkpoint.load(drive / "checkpoints" / "last").progress["step"] == 130
    assert sorted(p.name for p in (drive / "checkpoints").iterdir()) == [checkpoint.SPARE, "best", "last"]
    assert (drive / "metrics.json").read_text() == (work / "metrics.json").read_text() and not warnings


def test_training_goes_on_when_drive_drops_and_the_run_reaches_it_after(synthetic_cache, tmp_path, monkeypatch,
                                                                       capsys):
    """Drive fails with OSError 107 (an idle drop) at epoch 1's copy: epoch 2 trains all the same, the message
    comes once, and the run is complete on Drive at the end."""
    local, drive = tmp_path / "local", tmp_path / "drive"
    real_copy = drive_sync.atomic_copy

    def dropped_in_epoch_1(src, dst):
        if len(json.loads((local / "r" / "metrics.json").read_text())) == 1:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected", str(dst))
        return real_copy(src, dst)

    monkeypatch.setattr(drive_sync, "atomic_copy", dropped_in_epoch_1)
    result = train(synthetic_cache.root, drive, "tiny", quick_config(max_epochs=2), run_name="r", local_dir=local,
                   sync_minutes=0, show_progress=False)
    err = capsys.readouterr().err
    assert err.count("Google Drive is not mounted (or disconnected): training goes on") == 1, err
    assert result.run_dir == drive / "r" and result.epochs == 2
    assert metrics_without_time(drive / "r") == metrics_without_time(local / "r")
    assert checkpoint.load(drive / "r" / "checkpoints" / "last").progress["epoch"] == 2
    assert checkpoint.load(drive / "r" / "checkpoints" / "best").progress == \
        checkpoint.load(local / "r" / "checkpoints" / "best").progress


def test_a_save_killed_midway_leaves_nothing_behind(synthetic_cache, tmp_path):
    """A real process killed in the middle of writing a checkpoint, then the same command again: it resumes
    from the complete new checkpoint, and neither the run folder nor the temporary folder keeps staging."""
    save, tmp = tmp_path / "runs", tmp_path / "tmp"
    tmp.mkdir()
    args = ["--cache_dir", str(synthetic_cache.root), "--save_dir", str(save), "--run_name", "killed",
            "--config_type", "tiny", "--batch_size", "1", "--grad_accum_steps", "1", "--max_epochs", "2",
            "--num_workers", "0", "--no_augment"]
    # Killed right after the current `last` was renamed away in epoch 2, the new checkpoint complete beside it.
    killer = ("import os, pathlib, signal, sys\n"
              "rename = pathlib.Path.rename\n"
              "def rename_then_die(self, target):\n"
              "    result = rename(self, target)\n"
              "    if self.name == 'last' and self.parent.name == 'checkpoints':\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return result\n"
              "pathlib.Path.rename = rename_then_die\n"
              "from fer_lib.train import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", killer, *args], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    again = subprocess.run([sys.executable, "-m", "fer_lib.train", *args], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    run = save / "killed"
    assert "resuming" in again.stdout and checkpoint.load(run / "checkpoints" / "last").progress["epoch"] == 2
    hidden = [p.name for folder in (run, run / "checkpoints") for p in folder.iterdir() if p.name.startswith(".")]
    assert hidden == [".spare"] and not list(tmp.iterdir())  # only the slot the next save is written into


# Where a real SIGINT is sent, as the stop button sends it: in the `n`-th call of a step, a checkpoint write
# or a Drive copy; the handler runs inside that call.
STOP_IN = {"step": ("fer_lib.training.loop", "Trainer", "_optimizer_step"),
           "save": ("fer_lib.training.checkpoint", None, "_write"),
           "copy": ("fer_lib.training.drive_sync", "DriveSync", "_push")}
# A process that does the same to itself (STOP_IN, STOP_AT), SIGINT restored first (a background job of a
# script would have it ignored).
STOPPER = ("import importlib, os, signal, sys\n"
           "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
           "module, cls, name = {STOP_IN}[os.environ['STOP_IN']]\n"
           "owner = importlib.import_module(module)\n"
           "owner = getattr(owner, cls) if cls else owner\n"
           "real, calls = getattr(owner, name), []\n"
           "def stopping(*args, **kwargs):\n"
           "    calls.append(1)\n"
           "    if len(calls) == int(os.environ['STOP_AT']):\n"
           "        os.kill(os.getpid(), signal.SIGINT)\n"
           "    return real(*args, **kwargs)\n"
           "setattr(owner, name, stopping)\n"
           "from fer_lib.train import main\n"
           "sys.exit(main(sys.argv[1:]))\n").replace("{STOP_IN}", repr(STOP_IN))


def stop_in_this_process(where: str, at: int, monkeypatch) -> None:
    """The same as STOPPER, in this process."""
    import importlib

    module, cls, name = STOP_IN[where]
    owner = importlib.import_module(module)
    owner = getattr(owner, cls) if cls else owner
    real, calls = getattr(owner, name), []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, stopping)


def test_stopping_keeps_every_step_and_the_rerun_equals_an_uninterrupted_run(short_run, synthetic_cache, tmp_path,
                                                                              monkeypatch, capsys):
    """Issue 21.2: SIGINT in a step (of a real process), in a checkpoint write, in a Drive copy: each run ends with
    exit 130 and one line, Drive holds what was trained, and the reruns end where the uninterrupted run ends."""
    save, local = tmp_path / "drive", tmp_path / "local"
    args = ["--cache_dir", str(synthetic_cache.root), "--save_dir", str(save), "--run_name", "r", "--config_type",
            "tiny", "--batch_size", "1", "--grad_accum_steps", "1", "--max_epochs", "2", "--lr", "1e-3",
            "--num_workers", "0", "--warmup_ratio", "0", "--early_stopping_patience", "50", "--seed", "7",
            "--local_dir", str(local), "--sync_minutes", "0", "--checkpoint_every_steps", "1"]
    rng = np.random.default_rng()
    reached = []
    for where, at in (("step", rng.integers(1, 4)), ("save", rng.integers(1, 3)), ("copy", rng.integers(1, 3))):
        if where == "step":
            env = {**os.environ, "PYTHONPATH": str(REPO), "STOP_IN": where, "STOP_AT": str(at)}  # threads as here
            stopped = subprocess.run([sys.executable, "-c", STOPPER, *args], env=env, capture_output=True, text=True,
                                     timeout=300)
            status, err = stopped.returncode, stopped.stderr
        else:
            with monkeypatch.context() as patch:
                stop_in_this_process(where, at, patch)
                status = main(args)
            err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert status == 130, (where, at, err[-3000:])
        assert "Traceback" not in err and lines[-1].startswith("stopped at epoch "), (where, at, lines)
        assert "Drive holds epoch" in lines[-1] and lines[-1].endswith("run 03 again (or the same command) to continue")
        trained = checkpoint.read_progress(local / "r" / "checkpoints" / "last")
        assert checkpoint.read_progress(save / "r" / "checkpoints" / "last") == trained  # nothing only local
        assert json.loads((save / "r" / "sync_state.json").read_text())["state"] == "stopped"
        reached.append(trained["step"])
    assert reached == sorted(reached) and reached[-1] < 8, reached  # each run went on from the one before

    resumed = train(synthetic_cache.root, save, "tiny", quick_config(max_epochs=2, augment=True,
                    checkpoint_every_steps=1), run_name="r", local_dir=local, sync_minutes=0, show_progress=False)
    assert metrics_without_time(resumed.run_dir) == metrics_without_time(short_run.run_dir)
    a = checkpoint.load(short_run.run_dir / "checkpoints" / "last")
    b = checkpoint.load(resumed.run_dir / "checkpoints" / "last")
    assert a.progress == b.progress
    for name in a.weights:
        assert torch.equal(a.weights[name], b.weights[name]), name
    assert json.loads((save / "r" / "sync_state.json").read_text())["state"] == "finished"


# --------------------------------------------------------------------------------------------
# Several processes
# --------------------------------------------------------------------------------------------


def test_two_processes_with_gloo_write_one_run(synthetic_cache, tmp_path):
    save = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fer_lib.train", "--cache_dir", str(synthetic_cache.root), "--save_dir", str(save),
           "--config_type", "tiny", "--batch_size", "1", "--grad_accum_steps", "2", "--max_epochs", "2",
           "--num_workers", "0", "--run_name", "ddp", "--no_augment", "--checkpoint_every_steps", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run folder:") == 1  # only process 0 speaks
    run = save / "ddp"
    assert sorted(p.name for p in save.iterdir()) == ["ddp"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [checkpoint.SPARE, "best", "last"]
    assert [row["epoch"] for row in json.loads((run / "metrics.json").read_text())] == [1, 2]
    progress = checkpoint.load(run / "checkpoints" / "last").progress
    # 4 train clips over 2 processes at batch 1: 2 batches each per epoch, 1 step per epoch with accumulation 2.
    assert progress["world_size"] == 2 and progress["step"] == 2 and progress["seen"] == 0
    assert len(checkpoint.load(run / "checkpoints" / "last").state["rng"]) == 2


# --------------------------------------------------------------------------------------------
# Learnability: the tiny preset learns the synthetic cues, from the modality that carries them
# --------------------------------------------------------------------------------------------

LEARN_EPOCHS = 40
LORA_EPOCHS = 40  # measured: 0.9 first exceeded at epoch 17 (1.0), 0.9375 at the end (quiet machine, about 40 s of
# training); on a machine shared with other test runs the same test gave 0.9375 first at epoch 24. 30 epochs (a
# faster cosine decay) plateaued at 0.875 there.
LEARN_REPEATS = 2  # clips per class and actor
OTHER_PATIENCE = 10  # early stopping of the modality that does not carry the label (val macro-F1). Measured:
# the carrying modality is at 0.5 by epoch 5 (audio) and 11 (visual), so a cue shows well within 10 epochs;
# the other one stopped at epoch 11 (visual on audio-signal clips, 0.125 throughout) and 33 (audio on
# face-signal clips, at most 0.19).


@pytest.fixture(scope="module")
def signal_caches(tmp_path_factory):
    """For each signal (av, a, v): train actors 1-2 and val actor 3 with all 8 classes twice (32 train and
    16 val clips), and test actor 4 with one clip (the fixed split of 4 actors is train 1-2, val 3, test 4;
    nothing here reads the test). With one clip per class and actor the val accuracy stalled at 0.75-0.875
    while the train accuracy reached 1.0: 16 training clips are too few to generalise to a new actor."""
    from fer_lib.data import synthetic
    from fer_lib.preprocess import preprocess

    root = tmp_path_factory.mktemp("signals")
    renderer = synthetic.FaceRenderer()
    caches = {}
    for n, signal in enumerate(("av", "a", "v")):
        clips = root / f"clips_{signal}"
        synthetic.generate_dataset(clips, actors=3, signal=signal, repeats=LEARN_REPEATS, seed=100 + n)
        spec = synthetic.draw_spec(0, 4, signal, np.random.default_rng(200 + n))
        synthetic.write_clip(clips / "Actor_04" / synthetic.clip_name(0, 4, 0), spec, renderer)
        preprocess(clips, root / f"cache_{signal}", progress=False, verbose=False)
        caches[signal] = root / f"cache_{signal}"
    return caches


def learn(cache: Path, save: Path, modalities: str, model_cfg="tiny", epochs: int = LEARN_EPOCHS,
          patience: int = 50) -> list[float]:
    # Audio alone memorises the clips' timing and noise unless time shift, gain and noise vary them (val
    # accuracy 0.62 without, 1.0 with); frame augmentation only slows the visual runs down at this budget.
    # The tiny preset mixes both layers of each encoder (the layer-weighted sum is on in every preset).
    cfg = quick_config(max_epochs=epochs, batch_size=4, modalities=modalities, lr=3e-4, augment=modalities == "a",
                       early_stopping_patience=patience)
    result = train(cache, save, model_cfg, cfg, show_progress=False)
    accuracies = [row["val_acc"] for row in result.metrics]
    print(f"{cache.name} {modalities}: val acc per epoch {accuracies}")
    return accuracies


# Measured on this 2-core CPU (about 2 minutes): 0.9 is first reached at epoch 21-25 and the run ends at
# 0.94-1.0 over 4 draws of data and seed (one-off runs). The tiny preset's modality dropout (0.3) makes
# that hold across draws: without it the av model leaned on the faster-learning audio branch and, on
# one of the other data draws (seed 103), stalled at 0.69-0.75; on this test's draw it reached 1.0
# either way. With the layer-weighted sum in `tiny` (both layers of each encoder mixed): 0.5 at epoch 10, 0.875
# at 18, 0.9375 first at epoch 22, 1.0 at 28 and from 31 to the end (one run).
def test_tiny_learns_the_synthetic_clips(signal_caches, tmp_path):
    assert max(learn(signal_caches["av"], tmp_path, "av")) >= 0.9


# Measured before the layer-weighted sum: audio-only and visual-only reach 1.0 on the clips whose label they
# carry (epochs 22 and 26), and the best of the other modality over 40 epochs is 0.19 (audio on face-signal
# clips) and 0.31 (visual on audio-signal clips). With it: 1.0 first at epochs 24 (audio) and 19 (visual).
@pytest.mark.parametrize("signal", ["a", "v"])
def test_only_the_modality_that_carries_the_label_learns(signal_caches, tmp_path, signal):
    other = {"a": "v", "v": "a"}[signal]
    assert max(learn(signal_caches[signal], tmp_path, signal)) >= 0.9
    # The other modality trains as a user's run would, with early stopping: while it finds nothing, the run
    # ends OTHER_PATIENCE epochs after its best; a cue it could learn would keep improving it and the run going.
    assert max(learn(signal_caches[signal], tmp_path, other, patience=OTHER_PATIENCE)) <= 0.375  # chance: 0.125


def test_tiny_learns_through_lora_adapters(signal_caches, tmp_path):
    """A pretrained LFM2 (here a tiny random one written by save_pretrained: no hub) trains through LoRA
    adapters only, its own weights frozen; the audio-only model still learns the audio-signal clips."""
    from transformers import Lfm2Config, Lfm2ForCausalLM

    from fer_lib.config import TINY_LFM2

    torch.manual_seed(0)
    Lfm2ForCausalLM(Lfm2Config(**TINY_LFM2)).save_pretrained(tmp_path / "lfm2")
    model_cfg = get_preset("tiny")
    model_cfg.fusion.backbone_id = str(tmp_path / "lfm2")
    assert max(learn(signal_caches["a"], tmp_path, "a", model_cfg, epochs=LORA_EPOCHS)) >= 0.9
