"""Faults and misuse, with real files and real processes: nothing lost, and one line instead of a traceback.

Each test names the item of issue 16 (and 15.6) it covers. Every command is also driven by a table:
each numeric flag of every `python -m fer_lib.*` command (found in its own parser) and each path flag
gets an invalid value, and must end with exit status 2, exactly one line on stderr, no traceback and
nothing changed on disk.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fer_lib
from fer_lib import cli, evaluate, fileio, locking, predict
from fer_lib.config import ConfigError, PreprocessConfig
from fer_lib.models import sizes
from fer_lib.train import main as train_main
from fer_lib.training import checkpoint
from fer_lib.training.loop import Trainer

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def train_args(cache: Path, save: Path, run_name: str = "tiny", epochs: int = 1, **flags) -> list[str]:
    """A `tiny` run of one batch of 4 clips per epoch on the shared 10-clip cache (train actor 1)."""
    args = {"cache_dir": cache, "save_dir": save, "run_name": run_name, "config_type": "tiny", "batch_size": 4,
            "grad_accum_steps": 1, "max_epochs": epochs, "lr": 1e-3, "num_workers": 0, "warmup_ratio": 0,
            "early_stopping_patience": 50, "seed": 7, **flags}
    return [*(item for key, value in args.items() for item in (f"--{key}", str(value))), "--no_augment"]


@pytest.fixture(scope="module")
def run(synthetic_cache, tmp_path_factory) -> Path:
    """A finished one-epoch `tiny` run folder, made by the real command (read-only: copy it to change it)."""
    save = tmp_path_factory.mktemp("fault_runs")
    assert train_main(train_args(synthetic_cache.root, save)) == 0
    return save / "tiny"


@pytest.fixture
def run_copy(run, tmp_path) -> Path:
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy)
    return copy


def one_error_line(capsys) -> str:
    """The only line on stderr, which says `error: ...` (and no traceback)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def snapshot(*folders: Path) -> dict:
    """Every folder and file below `folders`, files with their size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "folder"
            for folder in folders if folder.exists() for p in [folder, *folder.rglob("*")]}


@pytest.fixture
def full_disk(tmp_path, monkeypatch) -> Path:
    """A folder on a file system with no space left: a tiny tmpfs, filled up, where mounting is allowed (root);
    elsewhere a folder whose file system reports no free blocks (a monkeypatched os.statvfs) and whose
    writes fail with ENOSPC (a monkeypatched open in fer_lib.fileio)."""
    folder = tmp_path / "full"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    except OSError:  # no mount command
        mounted = False
    if mounted:
        with pytest.raises(OSError):
            (folder / "filler").write_bytes(b"\0" * 128 * 1024)
    else:
        real_statvfs, real_open = os.statvfs, open

        def statvfs(path):
            result = real_statvfs(path)
            return os.statvfs_result((*result[:4], 0, *result[5:])) if str(path).startswith(str(folder)) else result

        def open_full(path, *args, **kwargs):
            if str(path).startswith(str(folder)):
                raise OSError(28, "No space left on device")
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "statvfs", statvfs)
        monkeypatch.setattr(fileio, "open", open_full, raising=False)
    yield folder
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)


# --------------------------------------------------------------------------------------------
# 16.1: one trainer per run folder; a dead holder's lease is taken over
# --------------------------------------------------------------------------------------------

# A trainer process that imports everything first, then waits for the go signal: both start training together.
RACE = """
import os, sys, time
from fer_lib.train import main
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
sys.exit(main(sys.argv[2:]))
"""


def test_two_trainers_started_together_one_trains_and_a_dead_holder_is_taken_over(synthetic_cache, tmp_path, capsys):
    save, go = tmp_path / "runs", tmp_path / "go"
    argv = train_args(synthetic_cache.root, save, run_name="race", epochs=2)
    procs, outs = [], []
    for k in range(2):
        out, err = tmp_path / f"out{k}.txt", tmp_path / f"err{k}.txt"
        with open(out, "w") as o, open(err, "w") as e:
            procs.append(subprocess.Popen([sys.executable, "-c", RACE, str(go), *argv], stdout=o, stderr=e,
                                          env=ENV, cwd=REPO))
        outs.append((out, err))
    try:
        deadline = time.monotonic() + 240
        while not all(out.read_text().startswith("ready") for out, _ in outs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [e.read_text() for _, e in outs]
            time.sleep(0.05)
        go.touch()
        while all(p.poll() is None for p in procs):  # the second one stops at once
            assert time.monotonic() < deadline
            time.sleep(0.01)
        loser = next(k for k, p in enumerate(procs) if p.poll() is not None)
        winner = procs[1 - loser]
        assert procs[loser].returncode == 2 and winner.poll() is None  # the winner is still training
        lines = outs[loser][1].read_text().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0], lines
        assert lines[0].startswith("error: ") and f"in use by training (pid {winner.pid} " in lines[0]

        # The winner dies (SIGKILL, a lost runtime) after its first epoch's checkpoint.
        last = save / "race" / "checkpoints" / "last"
        while not last.is_dir():  # (checkpoint.find would repair a swap under way)
            assert time.monotonic() < deadline and winner.poll() is None, outs[1 - loser][1].read_text()[-2000:]
            time.sleep(0.02)
        winner.send_signal(signal.SIGKILL)
        winner.wait()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert locking.is_held(save / "race") is False  # its lease is stale at once: its process is gone
    epoch_killed = checkpoint.load(checkpoint.find(save / "race")).progress["epoch"]
    assert epoch_killed == 1

    # The same command again takes the lease over and continues where the dead one stopped.
    assert train_main(argv) == 0
    assert "resuming" in capsys.readouterr().out
    assert [row["epoch"] for row in json.loads((save / "race" / "metrics.json").read_text())] == [1, 2]
    assert checkpoint.load(last).progress["epoch"] == 2
    assert not (save / "race" / locking.LOCK_NAME).exists()


# --------------------------------------------------------------------------------------------
# 16.5: the synthetic generator never writes over clips unless asked
# --------------------------------------------------------------------------------------------


def test_synthetic_clips_are_not_written_over_without_overwrite(synthetic_clips, tmp_path, capsys):
    from fer_lib.data import synthetic

    out = tmp_path / "clips"
    existing = out / "Actor_01" / synthetic.clip_name(0, 1, 0)
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"someone's clip")
    before = snapshot(out)
    assert synthetic.main(["--out", str(out), "--actors", "1"]) == 2
    line = one_error_line(capsys)
    assert "1 of the 8 clips already exist" in line and "--overwrite" in line
    assert snapshot(out) == before

    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for target in (a_file, a_file / "below"):
        assert synthetic.main(["--out", str(target), "--actors", "1"]) == 2
        assert str(a_file) in one_error_line(capsys)
    assert a_file.read_text() == "not a folder"

    assert synthetic.main(["--out", str(out), "--actors", "1", "--overwrite", "--workers", "2"]) == 0
    assert existing.read_bytes()[4:8] == b"ftyp" and len(list(out.rglob("*.mp4"))) == 8


# --------------------------------------------------------------------------------------------
# 16.6: training refuses a cache built for other model inputs, with the rule evaluation uses
# --------------------------------------------------------------------------------------------


def test_training_refuses_a_cache_of_8_frames_per_clip(synthetic_clips, tmp_path, capsys):
    from fer_lib.preprocess import preprocess

    raw = tmp_path / "raw" / "Actor_01"
    raw.mkdir(parents=True)
    shutil.copy(synthetic_clips.paths[0], raw)
    config = PreprocessConfig()
    config.input.num_frames = 8
    cache_dir = tmp_path / "cache8"
    summary = preprocess(raw.parent, cache_dir, config, progress=False, verbose=False)
    assert summary["cached"] == 1  # a real cache: one clip of 8 frames
    save = tmp_path / "runs"
    assert train_main(train_args(cache_dir, save)) == 2
    line = one_error_line(capsys)
    assert "num_frames 8 vs 16" in line and "other model inputs" in line
    assert not save.exists()  # refused before anything was written


# --------------------------------------------------------------------------------------------
# 16.7: a changed max_epochs continues the run on a schedule rebuilt for the new length, and says so
# --------------------------------------------------------------------------------------------


def test_changed_max_epochs_rebuilds_the_schedule_and_says_so(run_copy, synthetic_cache, capsys, monkeypatch):
    """The run trained 1 epoch of 1 step with max_epochs 1 (lr decayed to 0); with max_epochs 2 its second
    step follows the cosine schedule of 2 steps: lr 1e-3 * 0.5 * (1 + cos(pi / 2))."""
    rates, real_step = [], Trainer._optimizer_step

    def record(self):
        rates.append({group["name"]: group["lr"] for group in self.optimizer.param_groups})
        real_step(self)

    monkeypatch.setattr(Trainer, "_optimizer_step", record)
    assert train_main(train_args(synthetic_cache.root, run_copy.parent, epochs=2)) == 0
    out = capsys.readouterr().out
    assert "max_epochs 1 -> 2: the learning-rate schedule is rebuilt for 2 epochs" in out
    assert rates == [{"heads": pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi / 2)))}]
    assert json.loads((run_copy / "config.json").read_text())["train"]["max_epochs"] == 2
    assert [row["epoch"] for row in json.loads((run_copy / "metrics.json").read_text())] == [1, 2]


# --------------------------------------------------------------------------------------------
# 15.6: the same run name with other settings: what differs and the two ways forward, in one line
# --------------------------------------------------------------------------------------------


def test_same_run_name_with_another_lr_names_the_change_and_the_ways_forward(run_copy, synthetic_cache, capsys):
    before = snapshot(run_copy)
    assert train_main(train_args(synthetic_cache.root, run_copy.parent, lr=5e-4)) == 2
    line = one_error_line(capsys)
    assert "train.lr 0.001 -> 0.0005" in line
    assert "run name 'tiny-lr5e-4'" in line and f"delete or rename {run_copy}" in line
    assert snapshot(run_copy) == before and sorted(p.name for p in run_copy.parent.iterdir()) == ["tiny"]


# --------------------------------------------------------------------------------------------
# 16.8: tracebacks where one line was due
# --------------------------------------------------------------------------------------------


def test_a_device_this_machine_lacks_is_one_line(run, synthetic_clips, synthetic_cache, tmp_path, capsys):
    before = snapshot(run, tmp_path)
    video = str(synthetic_clips.paths[0])
    for device in ("cuda:7", "tpu"):
        common = ["--checkpoint", str(run), "--device", device, "--out", str(tmp_path / "out")]
        assert evaluate.main(["--cache_dir", str(synthetic_cache.root), *common]) == 2
        assert f"device {device!r}" in one_error_line(capsys)
        assert predict.main([video, *common]) == 2
        assert f"device {device!r}" in one_error_line(capsys)
    assert snapshot(run, tmp_path) == before


def test_a_gpu_index_beyond_the_machines_gpus_is_named(monkeypatch):
    """On a machine with one GPU (its count emulated here: this one has none), cuda:7 says which exist."""
    import torch

    from fer_lib import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert devices.resolve("cuda:0") == torch.device("cuda:0") and devices.resolve(None).type == "cuda"
    with pytest.raises(devices.DeviceError, match=r"this machine has 1 GPU \(cuda:0\)"):
        devices.resolve("cuda:7")


def test_an_output_folder_that_is_full_or_not_a_folder_is_one_line_before_any_work(
        run, synthetic_clips, synthetic_cache, full_disk, tmp_path, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although the output folder cannot be written")

    monkeypatch.setattr(checkpoint, "load_model", no_work)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    before = snapshot(run, tmp_path)
    video = str(synthetic_clips.paths[0])
    for out, message in ((full_disk / "results", "No space left on device"), (a_file / "results", "Not a folder")):
        common = ["--checkpoint", str(run), "--out", str(out), "--no_progress"]
        assert evaluate.main(["--cache_dir", str(synthetic_cache.root), *common]) == 2
        assert message in one_error_line(capsys)
        assert predict.main([video, *common]) == 2
        assert message in one_error_line(capsys)
    assert snapshot(run, tmp_path) == before


def test_a_full_disk_mid_write_names_the_file_and_keeps_the_old_one(small_disk):
    disk = small_disk(64 * 1024)
    target = disk.path / "metrics.json"
    fileio.atomic_write_text(target, '[{"epoch": 1}]')  # the old file: it fits
    with pytest.raises(OSError) as error:
        fileio.atomic_write_bytes(target, b"\0" * (1 << 20))  # the new one does not
    assert error.value.errno == 28 and error.value.filename == str(target)
    assert cli.describe_os_error(error.value) == f"No space left on device: {target}"
    assert target.read_text() == '[{"epoch": 1}]' and not fileio.stale_temporaries(disk.path)


@pytest.mark.parametrize("name", ["config.json", "split.json", "metrics.json"])
def test_a_damaged_run_folder_file_is_one_line_and_left_as_it_is(name, run_copy, synthetic_cache, capsys):
    damaged = run_copy / name
    damaged.write_text(damaged.read_text()[:40])  # truncated: a Drive sync cut short
    before = snapshot(run_copy)
    assert train_main(train_args(synthetic_cache.root, run_copy.parent, epochs=2)) == 2
    line = one_error_line(capsys)
    assert f"{damaged} is damaged" in line
    assert snapshot(run_copy) == before


def test_a_damaged_checkpoint_config_is_one_line_for_evaluation(run_copy, synthetic_cache, tmp_path, capsys):
    (run_copy / "checkpoints" / "best" / "config.json").write_text("{not json")
    assert evaluate.main(["--checkpoint", str(run_copy), "--cache_dir", str(synthetic_cache.root),
                          "--out", str(tmp_path / "out")]) == 2
    assert "damaged checkpoint" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# 16.9 and 16.8: every numeric and path flag of every command, driven by a table
# --------------------------------------------------------------------------------------------


def command_modules() -> list[str]:
    """Every `python -m fer_lib.*` command: every module of fer_lib imported, the registry `cli.COMMANDS` holds
    the modules whose `main` `@cli.command` wraps; a module with a `main` that it does not wrap fails here."""
    unwrapped = []
    for info in pkgutil.walk_packages(fer_lib.__path__, "fer_lib."):
        module = importlib.import_module(info.name)
        if callable(getattr(module, "main", None)) and cli.COMMANDS.get(info.name) is not module.main:
            unwrapped.append(info.name)
    assert not unwrapped, f"commands whose main is not wrapped by @cli.command: {unwrapped}"
    return sorted(name for name in cli.COMMANDS if name.startswith("fer_lib."))


class _Parser(Exception):
    pass


def parser_of(module: str, monkeypatch) -> cli.ArgumentParser:
    """The parser `module.main` builds, caught as it starts parsing."""
    def catch(self, *args, **kwargs):
        raise _Parser(self)

    with monkeypatch.context() as patch:
        patch.setattr(cli.ArgumentParser, "parse_args", catch)
        with pytest.raises(_Parser) as caught:
            importlib.import_module(module).main([])
    return caught.value.args[0]


def invalid_numbers(kind) -> list[str]:
    """Values outside the range of a `cli.int_range` / `cli.float_range` flag type, and values that are no number."""
    integer = kind.__name__ == "integer"
    values = ["x", "1.5"] if integer else ["x", "nan", "inf"]
    step = 1 if integer else 0.5
    if kind.low is not None:
        values.append(str(kind.low if kind.low_open else kind.low - step))
    if kind.high is not None:
        values.append(str(kind.high if kind.high_open else kind.high + step))
    return values


def test_every_command_is_in_the_table():
    """A new command (e.g. fer_lib.data.download) gets its numeric flags checked by the test below at once;
    its path flags need rows in PATH_CASES (`path_cases`): add them, then add it here."""
    assert command_modules() == sorted(COMMANDS_WITH_PATH_ROWS | COMMANDS_WITHOUT_PATH_FLAGS)


COMMANDS_WITH_PATH_ROWS = {"fer_lib.data.download", "fer_lib.data.synthetic", "fer_lib.preprocess", "fer_lib.train",
                           "fer_lib.evaluate", "fer_lib.cv", "fer_lib.predict", "fer_lib.demo", "fer_lib.results",
                           "fer_lib.app", "fer_lib.hub"}
COMMANDS_WITHOUT_PATH_FLAGS = {"fer_lib.models.sizes", "fer_lib.notebook_tools"}


def test_every_numeric_flag_of_every_command_is_checked_when_parsed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    unchecked, tried = [], 0
    for module in command_modules():
        main = importlib.import_module(module).main
        for action in parser_of(module, monkeypatch)._actions:
            if action.type in (int, float):
                unchecked.append(f"{module} {action.option_strings}")
            if not hasattr(action.type, "low"):
                continue
            for value in invalid_numbers(action.type):
                assert main([f"{action.option_strings[0]}={value}"]) == 2, (module, action.dest, value)
                line = one_error_line(capsys)
                assert line.startswith(f"error: {action.option_strings[0]} "), line
                tried += 1
    assert not unchecked, f"numeric flags without a range: {unchecked}"
    assert tried > 80 and not any(tmp_path.iterdir())


def path_cases(cache: Path, clips: Path, run: Path, video: Path, missing: Path, a_file: Path, scratch: Path):
    """(command, argv, what the line says): each argv is valid but for one path (or device) flag."""
    out = ["--out", str(scratch / "out")]
    ckpt = ["--checkpoint", str(run)]
    train = ["--config_type", "tiny", "--save_dir", str(scratch / "runs")]
    return [
        ("fer_lib.data.download", ["--root", str(a_file)], "Not a folder"),
        ("fer_lib.data.download", ["--root", str(scratch / "d"), "--local", str(a_file / "below")], "Not a folder"),
        ("fer_lib.data.download", ["--root", str(scratch / "d"), "--device", "tpu", "--no_progress"], "tpu"),
        ("fer_lib.data.synthetic", ["--out", str(a_file)], "Not a folder"),
        ("fer_lib.data.synthetic", ["--out", str(a_file / "below")], "Not a folder"),
        ("fer_lib.preprocess", ["--data_dir", str(missing), "--cache_dir", str(scratch / "c")], str(missing)),
        ("fer_lib.preprocess", ["--data_dir", str(clips), "--cache_dir", str(a_file)], str(a_file)),
        ("fer_lib.train", ["--cache_dir", str(missing), *train], str(missing)),
        ("fer_lib.train", ["--data_dir", str(missing), *train], str(missing)),
        ("fer_lib.train", ["--cache_dir", str(clips), *train], "not a preprocessing cache"),
        ("fer_lib.train", ["--cache_dir", str(cache), "--config_type", "tiny", "--save_dir", str(a_file)], str(a_file)),
        ("fer_lib.train", ["--cache_dir", str(cache), *train, "--resume_from", str(missing)], str(missing)),
        ("fer_lib.train", ["--cache_dir", str(cache), *train, "--run_name", "../elsewhere"], "not a folder name"),
        ("fer_lib.evaluate", ["--checkpoint", str(missing), "--cache_dir", str(cache), *out], str(missing)),
        ("fer_lib.evaluate", [*ckpt, "--cache_dir", str(missing), *out], str(missing)),
        ("fer_lib.evaluate", [*ckpt, "--data_dir", str(missing), *out], str(missing)),
        ("fer_lib.evaluate", [*ckpt, "--cache_dir", str(cache), "--out", str(a_file)], "Not a folder"),
        ("fer_lib.evaluate", [*ckpt, "--cache_dir", str(cache), *out, "--device", "cuda:7"], "cuda:7"),
        ("fer_lib.predict", [str(missing), *ckpt, *out], str(missing)),
        ("fer_lib.predict", [str(video), "--checkpoint", str(missing), *out], str(missing)),
        ("fer_lib.predict", [str(video), *ckpt, "--out", str(a_file)], "Not a folder"),
        ("fer_lib.predict", [str(video), *ckpt, *out, "--device", "tpu"], "tpu"),
        ("fer_lib.app", ["--checkpoint", str(missing)], str(missing)),
        ("fer_lib.app", [*ckpt, "--examples", str(a_file / "below")], "Not a folder"),
        ("fer_lib.app", [*ckpt, "--device", "tpu"], "tpu"),
        ("fer_lib.cv", ["--cache_dir", str(missing), "--name", "x", "--root", str(scratch)], str(missing)),
        ("fer_lib.cv", ["--data_dir", str(missing), "--name", "x", "--root", str(scratch)], str(missing)),
        ("fer_lib.cv", ["--cache_dir", str(cache), "--cv_dir", str(a_file), "--config_type", "tiny"], str(a_file)),
        ("fer_lib.cv", ["--cache_dir", str(cache), "--name", "x", "--root", str(a_file), "--config_type", "tiny"],
         str(a_file)),
        ("fer_lib.cv", ["--cache_dir", str(cache), "--name", "../../esc", "--root", str(scratch), "--config_type", "tiny"],
         "not a folder name"),  # issue 22.6: the name check train makes
        ("fer_lib.cv", ["--cache_dir", str(cache), "--cv_dir", str(scratch / "cv"), "--folds", "x"], "--folds"),
        ("fer_lib.cv", ["--cache_dir", str(cache), "--cv_dir", str(scratch / "cv"), "--folds", "0,6"], "--folds"),
        ("fer_lib.demo", ["--out", str(a_file)], str(a_file)),
        ("fer_lib.evaluate", [*ckpt, "--cache_dir", str(cache), *out, "--clip_windows"], "--data_dir"),
        ("fer_lib.results", ["--cv_dir", str(missing), "--readme", str(a_file)], str(missing)),
        ("fer_lib.results", ["--readme", str(missing)], str(missing)),
        ("fer_lib.results", ["--readme", str(a_file)], "results:start"),
        ("fer_lib.hub", ["save", "--run", str(missing), "--out", str(scratch / "shared")], str(missing)),
        ("fer_lib.hub", ["save", "--run", str(run), "--out", str(a_file)], "Not a folder"),
        ("fer_lib.hub", ["push", "--run", str(missing), "--repo_id", "someone/model"], str(missing)),
    ]


def test_every_path_flag_of_every_command_with_a_wrong_path(run, synthetic_cache, synthetic_clips, tmp_path, capsys):
    a_file, scratch = tmp_path / "a_file", tmp_path / "scratch"
    a_file.write_text("not a folder")
    scratch.mkdir()
    cases = path_cases(synthetic_cache.root, synthetic_clips.root, run, synthetic_clips.paths[0],
                       tmp_path / "missing", a_file, scratch)
    assert {module for module, _, _ in cases} == COMMANDS_WITH_PATH_ROWS
    before = snapshot(tmp_path, run, synthetic_cache.root, synthetic_clips.root)
    for module, argv, message in cases:
        assert importlib.import_module(module).main(argv) == 2, (module, argv)
        line = one_error_line(capsys)
        assert message in line, (module, argv, line)
    assert snapshot(tmp_path, run, synthetic_cache.root, synthetic_clips.root) == before


def test_real_processes_exit_2_with_one_line(tmp_path):
    """The exit status and stderr of real `python -m` processes (the two commands that start in a second)."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for argv in (["fer_lib.preprocess", "--data_dir", str(tmp_path), "--cache_dir", str(tmp_path / "c"),
                  "--workers", "0"],
                 ["fer_lib.data.synthetic", "--out", str(a_file)]):
        proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=ENV, cwd=tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_the_memory_estimate_refuses_a_batch_below_one():
    from fer_lib.config import get_preset

    for batch in (0, -3):
        with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
            sizes.estimate_training_memory(get_preset("tiny"), batch)
    assert sizes.estimate_training_memory(get_preset("tiny"), 1)["total_gb"] > 0
