"""Run every benchmark, save the figures with the machine they came from, and refresh the README.

    python -m bench [--only preprocess cache step train models drive realsize gpu]     (gpu: on a GPU machine, `bash bench/gpu.sh`)

writes bench/results.json (merged: a section measured on another machine, e.g. a GPU, is kept),
bench/results.md, and the README's Performance section (between the bench markers).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from bench.machine import describe_machine
from bench.report import render_markdown, update_readme

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"
SECTIONS = {"preprocess": "bench.bench_preprocess", "cache": "bench.bench_cache", "step": "bench.bench_step",
            "train": "bench.bench_train", "models": "bench.bench_models", "drive": "bench.bench_drive",
            "realsize": "bench.bench_realsize", "gpu": "bench.bench_gpu"}
CPU_SECTIONS = ("preprocess", "cache", "step", "train", "models", "drive", "realsize")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=tuple(SECTIONS), default=list(CPU_SECTIONS))
    args = parser.parse_args(argv)

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    machine = describe_machine()
    for name in args.only:
        print(f"== {name}")
        figures = importlib.import_module(SECTIONS[name]).run()
        results[name] = {"machine": machine, "measured": time.strftime("%Y-%m-%d"), "figures": figures}
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    markdown = render_markdown(results)
    (BENCH_DIR / "results.md").write_text(markdown)
    update_readme(markdown)
    print(f"wrote {RESULTS}, {BENCH_DIR / 'results.md'} and the README's Performance section")


if __name__ == "__main__":
    main()
