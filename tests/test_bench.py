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
