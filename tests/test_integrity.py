"""No silent wrong results (issue 22, cases 1-5 and 15): what fer_lib wrote itself and later reads back (a
cache shard, a checkpoint) is verified when read, a diverged run stops, a cut-short video is refused.

The damaged-state cases are one table, in the style of the flag table of test_faults.py: each row
damages a copy of real state made by the real commands (the session cache, a one-epoch `tiny` run, a
synthetic mp4), runs one command in-process, and expects exit status 2, exactly one line on stderr
that says what is wrong, and no output folder written.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from fer_lib import evaluate, predict
from fer_lib.data import cache
from fer_lib.locking import exclusive
from fer_lib.preprocess import main as preprocess_main
from fer_lib.train import main as train_main
from fer_lib.training import checkpoint
from test_faults import one_error_line, train_args


@pytest.fixture(scope="module")
def run(synthetic_cache, tmp_path_factory) -> Path:
    """A finished one-epoch `tiny` run folder (read-only: the cases damage copies)."""
    save = tmp_path_factory.mktemp("integrity_runs")
    assert train_main(train_args(synthetic_cache.root, save)) == 0
    return save / "tiny"


def error_line(capsys) -> str:
    """The one error line on stderr, last (after a training epoch's progress bar, if any), no traceback."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line for line in lines if "error" in line or "Traceback" in line] == lines[-1:], lines
    assert lines[-1].startswith("error: ") and all(line.startswith("epoch ") for line in lines[:-1]), lines
    return lines[-1]


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def member_offset(shard: Path) -> int:
    """A byte in the middle of the first clip's data inside `shard` (past its local header)."""
    with zipfile.ZipFile(shard) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(cache.ENTRY_SUFFIX))
    header = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return header + info.compress_size // 2


def rewrite_weights(ckpt_dir: Path, change) -> None:
    """Write the checkpoint in `ckpt_dir` again with changed weights, the way the trainer writes one (so its
    checksums match: what a diverged run of fer_lib before issue 22 wrote)."""
    loaded = checkpoint.load(ckpt_dir)
    loaded.weights = {k: change(k, v) for k, v in loaded.weights.items()}
    checkpoint._write(loaded, ckpt_dir)


def nan_weights(name, value):
    return torch.full_like(value, float("nan")) if value.is_floating_point() else value


def huge_weights(name, value):
    """Finite weights whose outputs overflow to inf/nan (the weights of a run about to diverge)."""
    return value * 1e38 if value.is_floating_point() else value


def damage_cases(cache_dir: Path, run: Path, video: Path, out: Path):
    """(case, damage(cache copy, run copy, video copy), command, argv, what the one line says)."""
    shard = cache_dir / "actor_01.shard"
    best = run / "checkpoints" / "best"
    ev = ["--checkpoint", str(run), "--cache_dir", str(cache_dir), "--split", "all", "--out", str(out), "--no_progress"]
    pr = [str(video), "--checkpoint", str(run), "--out", str(out), "--no_progress"]
    train = train_args(cache_dir, run.parent, run_name=run.name, epochs=2)
    return [
        ("truncated shard, train", lambda: truncate(shard, 0.5), train_main, train, "damaged cache shard"),
        ("truncated shard, evaluate all", lambda: truncate(shard, 0.5), evaluate.main, ev, "damaged cache shard"),
        ("bit flip in a clip of a shard", lambda: flip_byte(shard, member_offset(shard)), evaluate.main, ev,
         "damaged cache shard"),
        ("bit flip in a clip of a shard, train with a loader worker", lambda: flip_byte(shard, member_offset(shard)),
         train_main, train_args(cache_dir, run.parent, run_name="fresh", num_workers=1), "damaged cache shard"),
        ("bit flip in checkpoint weights, evaluate", lambda: flip_byte(best / checkpoint.WEIGHTS, -100),
         evaluate.main, ev, "changed since it was written"),
        ("bit flip in checkpoint weights, predict", lambda: flip_byte(best / checkpoint.WEIGHTS, -100),
         predict.main, pr, "changed since it was written"),
        ("truncated last checkpoint, train resumes", lambda: truncate(run / "checkpoints" / "last" / checkpoint.STATE, 0.5),
         train_main, train, "damaged checkpoint"),
        ("nan weights, evaluate", lambda: rewrite_weights(best, nan_weights), evaluate.main, ev, "nan or inf in"),
        ("nan weights, predict", lambda: rewrite_weights(best, nan_weights), predict.main, pr, "nan or inf in"),
        ("outputs overflow, evaluate", lambda: rewrite_weights(best, huge_weights), evaluate.main, ev,
         "outputs are nan or inf"),
        ("truncated video, predict", lambda: truncate(video, 0.5), predict.main, pr, "file ends early"),
        ("a tiny hop, predict", lambda: None, predict.main, pr + ["--hop", "1e-6"], "--max_windows"),
    ]


def test_damaged_state_is_one_line_and_exit_2(run, synthetic_cache, synthetic_clips, tmp_path, capsys):
    """Issue 22.2 and item 3 (shards, checkpoints), item 2 (non-finite weights and outputs), 22.3 and 22.15."""
    source_video = synthetic_clips.paths[2]  # 4.0 s: longer than a window, so a hop plans many
    names = [case[0] for case in damage_cases(tmp_path, tmp_path / "r", tmp_path / "v.mp4", tmp_path)]
    assert len(names) == len(set(names))
    for i, name in enumerate(names):
        scratch = tmp_path / f"case{i}"
        cache_copy, run_copy, video = scratch / "cache", scratch / "runs" / run.name, scratch / source_video.name
        shutil.copytree(synthetic_cache.root, cache_copy)
        shutil.copytree(run, run_copy)
        shutil.copy(source_video, video)
        out = scratch / "out"
        _, damage, command, argv, message = damage_cases(cache_copy, run_copy, video, out)[i]
        damage()
        assert command(argv) == 2, name
        line = error_line(capsys)
        assert message in line, (name, line)
        assert not out.exists() or not any(out.rglob("*.json")), name
        shutil.rmtree(scratch)


def test_check_and_preprocess_count_a_damaged_shard_as_a_problem(synthetic_cache, tmp_path, capsys):
    """22.2: `--check` and preprocessing (the raw clips of that actor gone) name the damaged shard as a problem,
    with the command that rebuilds it, instead of "no clip" and 0 problems."""
    cache_copy = tmp_path / "cache"
    shutil.copytree(synthetic_cache.root, cache_copy)
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_cache.clips.root / "Actor_02", raw / "Actor_02")  # actor 1's clips are gone
    flip_byte(cache_copy / "actor_01.shard", member_offset(cache_copy / "actor_01.shard"))
    assert preprocess_main(["--check", "--data_dir", str(raw), "--cache_dir", str(cache_copy), "--no_progress"]) == 0
    report = json.loads((cache_copy / "report.json").read_text())
    assert [p["kind"] for p in report["problems"]] == ["damaged_shard"]
    assert "fer_lib.preprocess" in report["problems"][0]["reason"] and "actor 1" in report["problems"][0]["reason"]
    truncate(cache_copy / "actor_01.shard", 0.5)
    assert preprocess_main(["--data_dir", str(raw), "--cache_dir", str(cache_copy), "--no_progress", "--workers", "1"]) == 0
    assert "actor_01.shard: damaged_shard" in capsys.readouterr().out
    assert (cache_copy / "actor_01.shard").is_file()  # kept: its clips can come back only from the raw clips


def test_training_refuses_a_cache_a_builder_still_writes(synthetic_cache, tmp_path, capsys):
    """22.4: a cache held by preprocessing is not read: one line naming the holder, nothing written."""
    cache_copy = tmp_path / "cache"
    shutil.copytree(synthetic_cache.root, cache_copy)
    with exclusive(cache_copy, "preprocessing"):
        assert train_main(train_args(cache_copy, tmp_path / "runs")) == 2
        line = one_error_line(capsys)
    assert "still being written by preprocessing" in line
    assert not (tmp_path / "runs").exists()


def test_a_diverged_run_stops_with_one_line_and_writes_no_nan(synthetic_cache, tmp_path, capsys):
    """22.1 / item 2: `--lr 1e8` stops at once, naming epoch, step and the usual causes; no checkpoint holds nan."""
    save = tmp_path / "runs"
    assert train_main(train_args(synthetic_cache.root, save, epochs=3, lr=1e8)) == 2
    line = error_line(capsys)
    assert "training diverged" in line and "epoch 1" in line and "--lr 1e+08" in line and "precision" in line
    for weights in (save / "tiny").rglob(checkpoint.WEIGHTS):
        assert not checkpoint.non_finite(checkpoint.load(weights.parent).weights)


def test_a_checkpoint_with_nan_weights_is_never_saved(run, tmp_path):
    loaded = checkpoint.load(run / "checkpoints" / "best")
    loaded.weights = {k: nan_weights(k, v) for k, v in loaded.weights.items()}
    with pytest.raises(checkpoint.CheckpointError, match="nan or inf in"):
        checkpoint.save(loaded, tmp_path, ("best", "last"))
    assert not (tmp_path / "checkpoints" / "best").exists() and not (tmp_path / "checkpoints" / "last").exists()


def test_an_unreadable_actor_folder_is_a_problem(synthetic_clips, tmp_path, monkeypatch):
    """22.5: a folder that cannot be listed is a problem named in the check, not "0/60 none found"."""
    from fer_lib.data.index import check_data

    raw = tmp_path / "raw"
    shutil.copytree(synthetic_clips.root, raw)
    (raw / "Actor_02").chmod(0)
    if os.geteuid() == 0:  # root lists any folder: let os.walk meet the refusal a user gets
        real_scandir = os.scandir

        def scandir(path="."):
            if Path(path).is_dir() and not Path(path).stat().st_mode & 0o444:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        index = check_data(raw, verbose=False, progress=False)
    finally:
        (raw / "Actor_02").chmod(0o755)
    assert [(p.path, p.kind) for p in index.problems] == [("Actor_02", "unreadable_folder")]
