"""The GPU benchmark cannot rot: its CPU dry run at tiny sizes runs the same code as `bash bench/gpu.sh`."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_dry_run_on_the_cpu():
    from bench import bench_gpu

    figures = bench_gpu.run(dry_run=True)
    step = figures["tiny"]
    assert step["step_s_batch2_raw"] > 0 and step["step_s_batch2_cached"] > 0 and step["cache_build_clips_per_s"] > 0
    assert figures["preprocess_clips_per_s"] > 0 and figures["device"] == "cpu (dry run)"


def test_gpu_script_is_bounded_and_writes_the_gpu_section():
    script = ROOT / "bench" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "timeout 480" in text and "-m bench --only gpu" in text  # 8 minutes; results.json via python -m bench


def test_the_drive_schedule_copies_when_due_deletes_nothing_and_counts_both_sides_alike():
    """bench_drive's figures at a small scale (a 1 MB checkpoint, 12 epochs, SYNC_MINUTES 5), against the schedule
    worked out by hand; "today" (every epoch a new folder, the old one deleted) on the same counts."""
    import torch

    from bench.bench_drive import IMPROVED, drive_bytes
    from fer_lib.training import checkpoint

    weights = {"w": torch.randn(128 * 1024)}
    state = {"optimizer": {"state": {0: {"exp_avg": torch.randn(128 * 1024)}}}}
    ckpt = checkpoint.Checkpoint(weights=weights, state=state, progress={}, config={"model": {}, "train": {}},
                                 split={"name": "fixed"})
    out = drive_bytes(ckpt, epochs=12, epoch_seconds=(60.0, 600.0), sync_minutes=5)
    size, small = out["checkpoint"], out["small"]
    assert size > 1 << 20 and out["kept"] == 2 * size + small
    # 60 s epochs: a copy when the next checkpoint would be more than 5 minutes after the last copy: after
    # epochs 5 and 10, then the end (12); `best` changed before each (IMPROVED), so 3 copies of each.
    every_5_min = out[60.0]
    assert every_5_min["copies_of_last"] == 3 and every_5_min["deleted"] <= 3 * small  # replaced metrics, no checkpoint
    assert 6 * size <= every_5_min["written"] <= 6 * size + 3 * small
    assert 3 * size <= every_5_min["final"] <= 3 * size + small  # last, best and the spare slot
    # 10-minute epochs: every checkpoint is due, so as many bytes as "today" wrote, and still none deleted.
    every_epoch, today = out[600.0], out["today"]
    best_changes = len([e for e in IMPROVED if e <= 12])
    assert every_epoch["copies_of_last"] == 12 and every_epoch["deleted"] <= 12 * small < size
    assert today["written"] == (12 + best_changes) * size + 12 * small
    assert today["deleted"] == (12 + best_changes - 2) * size and today["final"] == out["kept"]
    assert (12 + best_changes) * size <= every_epoch["written"] <= today["written"] + 12 * small


def test_the_cache_meets_its_targets_on_a_real_face_clip(synthetic_clips, tmp_path):
    """bench_cache's targets on one of the suite's clips (a real face photograph, 1280x720 H.264): its shard
    takes at most 0.6 MB and every decoded face crop is at least 38 dB PSNR from the raw crop."""
    from bench.bench_cache import TARGET_MB_PER_CLIP, TARGET_PSNR_DB, build_caches

    paths = synthetic_clips.paths[:1]
    shards, _, psnrs = build_caches(paths, tmp_path)
    mb_per_clip = sum(p.stat().st_size for p in shards.glob("*.shard")) / len(paths) / 1e6
    assert 0.05 < mb_per_clip <= TARGET_MB_PER_CLIP, mb_per_clip
    assert len(psnrs) == 16 and min(psnrs) >= TARGET_PSNR_DB, min(psnrs)
