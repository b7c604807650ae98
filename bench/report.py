"""bench/results.json -> the markdown table in bench/results.md and in the README's Performance section."""

from __future__ import annotations

from pathlib import Path

from bench.machine import machine_label
from fer_lib.reports import replace_block

README = Path(__file__).resolve().parents[1] / "README.md"

# The original description's claims for an A100 (never measured by anyone): shown beside ours.
SEED_CLAIMS = {"step time, batch 8": "500 ms", "peak VRAM": "4.5 GB", "epoch (1440 clips)": "62 s",
               "parameters (lightweight / full)": "158M / 243M"}


def _flatten(figures: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in figures.items():
        if key in ("machine", "benchmark", "components"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten(value, f"{name}.")
        else:
            rows.append((name, value))
    return rows


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render_markdown(results: dict) -> str:
    lines = ["| benchmark | figure | value | measured on |", "|---|---|---|---|"]
    for section in sorted(results):
        entry = results[section]
        where = f"{machine_label(entry['machine'])}, {entry['measured']}"
        for name, value in _flatten(entry["figures"]):
            lines.append(f"| {section} | {name} | {_value(value)} | {where} |")
    if not any("gpu" in entry["machine"] for entry in results.values()):
        lines.append("| GPU | step time, peak VRAM, epoch time (lightweight, full) | **not measured**: no GPU "
                     "was available to the sessions that ran these benchmarks | — |")
    lines += ["", "The original description claimed, for an A100 (never measured; not our figures): "
              + "; ".join(f"{k}: {v}" for k, v in SEED_CLAIMS.items()) + "."]
    return "\n".join(lines) + "\n"


def update_readme(markdown: str, readme: Path = README) -> None:
    """Replace the README's Performance table (between its `bench` markers)."""
    replace_block(readme, "bench", markdown)
