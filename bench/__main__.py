"""Run every benchmark, save the figures with the machine they came from, and refresh the README.

    python -m bench [--only preprocess cache step train models drive realsize gpu]     (gpu: on a GPU machine, `bash bench/gpu.sh`)

writes bench/results.json (merged: a section measured on another machine, e.g. a GPU, is kept),
bench/results.md, and the README's Performance section (between the bench markers).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Optional

from bench.machine import describe_machine
from bench.report import render_markdown, update_readme
from fer_lib import cli
from fer_lib.errors import FerError, one_line

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"
SECTIONS = {"preprocess": "bench.bench_preprocess", "cache": "bench.bench_cache", "step": "bench.bench_step",
            "train": "bench.bench_train", "models": "bench.bench_models", "drive": "bench.bench_drive",
            "realsize": "bench.bench_realsize", "gpu": "bench.bench_gpu"}
CPU_SECTIONS = ("preprocess", "cache", "step", "train", "models", "drive", "realsize")


class ResultsFileError(FerError):
    """bench/results.json cannot be read; one line."""


def read_results(path: Path) -> dict:
    """The figures measured so far, {section: {"machine", "measured", "figures"}}; {} when there are none yet."""
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text())
        if not isinstance(results, dict) or not all(isinstance(v, dict) and "figures" in v for v in results.values()):
            raise ValueError("not a mapping of sections with their figures")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"{path} is damaged ({one_line(exc)}); nothing was measured: restore it "
                               f"(git checkout {path.name} in {path.parent}) or move it away to start anew") from None
    return results


@cli.command()
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=tuple(SECTIONS), default=list(CPU_SECTIONS))
    args = parser.parse_args(argv)

    results = read_results(RESULTS)  # a damaged file stops here, before minutes of measuring
    if "gpu" in args.only:
        importlib.import_module(SECTIONS["gpu"]).require_gpu()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
