"""Damaged state (issue 22): files fer_lib wrote itself, damaged as a full disk, a cut-short sync, a flipped bit
or a hand edit leaves them, and what reading them does: exactly one line, exit status 2, nothing changed on disk.

The table DAMAGED_STATE drives the commands like the flag table of tests/test_faults.py (whose helpers and `run`
fixture it reuses). A row names the file (relative to a case folder that holds a copy of the fixture's run
folder, a preprocessing cache, an evaluation's predictions.csv and bench/results.json), how it is damaged, the
command that reads it and what the line must say. Add a row for each new file format, or for a new way one is
damaged; rows for shards and checksums can sit in another file and be appended to the same table.

Below the table: the other cases of issue 22 that are not one file's damage (a run folder with a best but no
last, results over measured numbers, a looping clip link, flags whose message misled, the weights' file mode).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from test_faults import one_error_line, run, snapshot, train_args  # noqa: F401 (run: the module's run fixture)

from fer_lib import EMOTIONS, cli, evaluate, explorer, results
from fer_lib.data import download
from fer_lib.predictions import Predictions
from fer_lib.train import main as train_main
from fer_lib.training import checkpoint

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    """One row's folder: `runs/tiny` (the run), `cache` (the preprocessing cache), `eval/predictions.csv`,
    `bench/results.json`; `scratch` for outputs, which must stay empty."""

    root: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def run(self) -> Path:
        return self.root / "runs" / "tiny"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"


# --------------------------------------------------------------------------------------------
# Ways to damage a file in place
# --------------------------------------------------------------------------------------------


def truncated(path: Path) -> None:
    """Cut short before a field separator in the middle (a sync or a write cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[:data.rindex(b",", 0, len(data) // 2)])


def replaced(old: str, new: str) -> Callable[[Path], None]:
    """The first `old` in the file becomes `new` (a hand edit, or a flipped bit: '1' ^ 0x02 = '3')."""
    def damage(path: Path) -> None:
        data = path.read_bytes()
        assert old.encode() in data, (path, old)
        path.write_bytes(data.replace(old.encode(), new.encode(), 1))
    return damage


def bit_flipped_tensor_name(path: Path) -> None:
    """One bit of a tensor's name in a safetensors header: `classifier` -> `Classifier` (the file still parses)."""
    data = bytearray(path.read_bytes())
    data[data.index(b'"classifier') + 1] ^= 0x20
    path.write_bytes(bytes(data))


def unverified(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    """`damage`, in a checkpoint written before checksums.json existed (no checksum stops the reader first), so the
    row shows what reading the file itself says."""
    def in_old_checkpoint(path: Path) -> None:
        damage(path)
        (path.parent / checkpoint.CHECKSUMS).unlink()
    return in_old_checkpoint


# --------------------------------------------------------------------------------------------
# The commands that read them: (main, argv); a function that is no command (the explorer) is
# wrapped by cli.command, which is what a notebook shows as one line too
# --------------------------------------------------------------------------------------------


def training(case: Case):
    return train_main, train_args(case.cache, case.run.parent, epochs=2)


def evaluation(case: Case):
    return evaluate.main, ["--checkpoint", str(case.run), "--cache_dir", str(case.cache),
                           "--out", str(case.scratch / "eval"), "--no_progress"]


def explorer_on_predictions(case: Case):
    return cli.command()(lambda argv: explorer.misclassified(argv[0])), [str(case.root / "eval" / "predictions.csv")]


def bench_command(case: Case):
    bench = importlib.import_module("bench.__main__")
    case.monkeypatch.setattr(bench, "RESULTS", case.root / "bench" / "results.json")
    return bench.main, ["--only", "models"]  # a damaged results.json must stop it before it measures anything


@dataclass
class Row:
    name: str
    file: str  # relative to the Case's root
    damage: Callable[[Path], None]
    command: Callable[[Case], tuple]
    says: tuple[str, ...]  # what the one line contains ("{file}" stands for the damaged file's path)


DAMAGED_STATE = [
    Row("manifest truncated", "cache/manifest.json", truncated, training, ("{file} is not valid JSON", "--overwrite")),
    Row("manifest bit-flipped", "cache/manifest.json", replaced('"num_frames": 16', '"num_frames": 36'), evaluation,
        ("{file} is damaged", "--overwrite")),
    Row("checkpoint config.json, wrong type", "runs/tiny/checkpoints/best/config.json",
        unverified(replaced('"num_frames": 16', '"num_frames": "16"')), evaluation,
        ("damaged checkpoint", "config.json", "model.input.num_frames must be an integer, got '16'")),
    Row("run config.json, lr a string", "runs/tiny/config.json", replaced('"lr": 0.001', '"lr": "0.001"'), training,
        ("{file} is damaged", "train.lr must be a number, got '0.001'")),
    Row("trainer_state.json, wrong type", "runs/tiny/checkpoints/last/trainer_state.json",
        unverified(replaced('"epoch": 1', '"epoch": "three"')), training,
        ("damaged checkpoint", "trainer_state.json", "epoch must be an integer, got 'three'")),
    Row("trainer_state.json, out of range", "runs/tiny/checkpoints/last/trainer_state.json",
        unverified(replaced('"epoch": 1', '"epoch": -5')), training, ("damaged checkpoint", "trainer_state.json", "epoch must be >= 0")),
    Row("trainer_state.json, no process", "runs/tiny/checkpoints/last/trainer_state.json",
        unverified(replaced('"world_size": 1', '"world_size": 0')), training, ("trainer_state.json", "world_size must be >= 1")),
    Row("safetensors header bit-flipped", "runs/tiny/checkpoints/best/model.safetensors", bit_flipped_tensor_name,
        evaluation, ("damaged checkpoint", "model.safetensors changed since it was written")),
    Row("safetensors header bit-flipped, no checksums", "runs/tiny/checkpoints/best/model.safetensors",
        unverified(bit_flipped_tensor_name), evaluation,
        ("damaged checkpoint", "model.safetensors does not match the model of its own config.json")),
    Row("safetensors truncated", "runs/tiny/checkpoints/last/model.safetensors", truncated, training,
        ("damaged checkpoint", "model.safetensors")),
    Row("bench results.json truncated", "bench/results.json", truncated, bench_command,
        ("{file} is damaged", "nothing was measured")),
    Row("predictions.csv truncated", "eval/predictions.csv", truncated, explorer_on_predictions,
        ("{file} is damaged", "evaluate again")),
]


def make_case(root: Path, run: Path, cache: Path, monkeypatch, row: Row) -> Case:
    case = Case(root, monkeypatch)
    shutil.copytree(run, case.run)
    if row.file.startswith("cache/"):  # the shared cache is read-only: copy it only to damage it
        shutil.copytree(cache, case.cache)
    else:
        case.cache.symlink_to(cache)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(EMOTIONS)), size=8)
    Predictions.from_probs([f"clip{k}.mp4" for k in range(8)], [1] * 8, np.arange(8), probs).write_csv(
        root / "eval" / "predictions.csv")
    (root / "bench").mkdir()
    shutil.copy(REPO / "bench" / "results.json", root / "bench" / "results.json")
    case.scratch.mkdir()
    return case


@pytest.mark.parametrize("row", DAMAGED_STATE, ids=lambda row: row.name)
def test_damaged_state_is_one_line_and_exit_2_with_nothing_changed(row, run, synthetic_cache, tmp_path, capsys,
                                                                    monkeypatch):
    case = make_case(tmp_path / "case", run, synthetic_cache.root, monkeypatch, row)
    damaged = case.root / row.file
    row.damage(damaged)
    before = snapshot(case.root, synthetic_cache.root)
    main, argv = row.command(case)
    assert main(argv) == 2, row.name
    line = one_error_line(capsys)
    for text in row.says:
        assert text.format(file=damaged) in line, (row.name, line)
    assert snapshot(case.root, synthetic_cache.root) == before
    assert not any(case.scratch.iterdir())


# --------------------------------------------------------------------------------------------
# Resume (case 8): a best without a last is refused with the way to go on, which works
# --------------------------------------------------------------------------------------------


def test_a_run_folder_with_best_but_no_last_is_refused_and_continues_from_best(run, synthetic_cache, tmp_path,
                                                                               capsys):
    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(run, run_dir)
    for name in ("last", checkpoint.SPARE):
        shutil.rmtree(run_dir / "checkpoints" / name, ignore_errors=True)
    before = snapshot(run_dir)
    argv = train_args(synthetic_cache.root, run_dir.parent, epochs=1)
    assert train_main(argv) == 2
    line = one_error_line(capsys)
    best = run_dir / "checkpoints" / "best"
    assert "has checkpoints/best but no checkpoints/last" in line and f"--resume_from {best} --run_name tiny" in line
    assert snapshot(run_dir) == before  # best, metrics.csv and metrics.json as they were

    # The way forward it names: continue from best (here the run's single epoch: nothing more to train).
    assert train_main(argv + ["--resume_from", str(best)]) == 0
    assert f"resuming {best} at epoch 2" in capsys.readouterr().out
    assert before[best / checkpoint.WEIGHTS] == snapshot(run_dir)[best / checkpoint.WEIGHTS]
    assert [row["epoch"] for row in json.loads((run_dir / "metrics.json").read_text())] == [1]


# --------------------------------------------------------------------------------------------
# results (case 9): measured numbers are never replaced by "not measured yet" unless --force
# --------------------------------------------------------------------------------------------


def test_results_keep_measured_numbers_without_force(tmp_path, capsys):
    readme, cv_dir = tmp_path / "README.md", tmp_path / "cv" / "reference"
    cv_dir.mkdir(parents=True)  # a cross-validation with no fold finished: no summary.json yet
    measured = f"{results.MEASURED} cross-validation `reference`, 6 folds ...\n\n| av | 71.2 ± 3.1 |"
    readme.write_text(f"# x\n<!-- results:start -->\n{measured}\n<!-- results:end -->\ntail\n")
    before = readme.read_text()
    for argv in (["--cv_dir", str(cv_dir)], []):
        assert results.main([*argv, "--readme", str(readme)]) == 2
        line = one_error_line(capsys)
        assert "holds measured results" in line and "--force" in line
        assert readme.read_text() == before
    assert results.main(["--cv_dir", str(cv_dir), "--readme", str(readme), "--force"]) == 0
    assert "Not measured yet" in readme.read_text() and "71.2" not in readme.read_text()


# --------------------------------------------------------------------------------------------
# Misleading before: each now says what is wrong, in one line, with exit status 2 and nothing written
# --------------------------------------------------------------------------------------------


def test_a_looping_clip_link_stops_preprocessing_before_the_cache_is_written(synthetic_clips, tmp_path, capsys):
    from fer_lib import preprocess

    raw = tmp_path / "raw"
    shutil.copytree(synthetic_clips.root / "Actor_02", raw / "Actor_02")
    one, other = raw / "Actor_02" / "01-01-01-01-01-01-02.mp4", raw / "Actor_02" / "01-01-02-01-01-01-02.mp4"
    one.symlink_to(other.name)
    other.symlink_to(one.name)
    cache_dir = tmp_path / "cache"
    assert preprocess.main(["--data_dir", str(raw), "--cache_dir", str(cache_dir), "--workers", "1",
                            "--no_progress"]) == 2
    line = one_error_line(capsys)
    assert "Too many levels of symbolic links" in line and "01-01-01-01-01-01-02.mp4" in line
    assert not cache_dir.exists()


def misleading_flag_cases(run_dir: Path, tmp_path: Path, cache: Path) -> dict:
    """name -> (main, argv, what the line says)."""
    from bench import __main__ as bench

    train = train_args(cache, run_dir.parent, epochs=2)
    return {
        "source not a url": (download.main, ["--root", str(tmp_path / "d"), "--source", "not a url", "--no_progress"],
                             "--source 'not a url' is not an http(s) URL"),
        "actors reversed": (download.main, ["--root", str(tmp_path / "d"), "--actors", "5-1"],
                            "the range 5-1 is reversed: write 1-5"),
        "local_dir inside the run": (train_main, [*train, "--local_dir", str(run_dir / "local")], "inside the run folder"),
        "local_dir is save_dir": (train_main, [*train, "--local_dir", str(run_dir.parent)], "inside the run folder"),
        "bench gpu without one": (bench.main, ["--only", "gpu"], "needs a CUDA GPU"),
    }


@pytest.mark.parametrize("name", ["source not a url", "actors reversed", "local_dir inside the run",
                                  "local_dir is save_dir", "bench gpu without one"])
def test_flags_that_misled_say_what_is_wrong(name, run, synthetic_cache, tmp_path, capsys, monkeypatch):
    import torch

    from bench import __main__ as bench

    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(run, run_dir)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # what `--only gpu` meets on a CPU machine
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results.json")
    main, argv, says = misleading_flag_cases(run_dir, tmp_path, synthetic_cache.root)[name]
    before = snapshot(tmp_path)
    assert main(argv) == 2, argv
    assert says in one_error_line(capsys)
    assert snapshot(tmp_path) == before


def test_checkpoint_weights_have_the_mode_of_every_other_file(run):
    """safetensors writes 0600; another user who can read the run could not read its weights."""
    for name in ("best", "last"):
        folder = run / "checkpoints" / name
        modes = {file: stat.S_IMODE(os.stat(folder / file).st_mode) for file in checkpoint.FILES}
        assert set(modes.values()) == {stat.S_IMODE(os.stat(folder / checkpoint.CONFIG).st_mode)}, modes
