"""Result folders a person opens: a fresh folder per result, JSON / CSV / markdown writers, the evaluation report.

    new_dir(parent, "best-test-av")      a new folder, `-2`, `-3` ... when the name is taken: never an earlier one reused
    write_json / write_csv               atomic (`fer_lib.fileio`), numbers written the same way everywhere
    markdown_table, fmt                  the tables of report.md, summary.md, ablation.md (percent with 2 decimals)
    replace_block(path, name, text)      a generated block of a markdown file (README), between its markers
    report_from_predictions(pred, dir)   metrics.json, per_class.csv, confusion PNGs and report.md of one evaluation
    ablation_table(results, dir)         ablation.csv / .md / .json / .png: one row per modality mode
    ablation_markdown(rows)              its table in markdown (ablation.md, a model card)

Every number is computed from per-clip predictions (`fer_lib.predictions`), so each report can be
recomputed from its predictions.csv.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from fer_lib import EMOTIONS
from fer_lib import modalities as modality_names
from fer_lib.errors import FerError
from fer_lib.fileio import atomic_write_text
from fer_lib.metrics import SUMMARY_METRICS
from fer_lib.predictions import CSV_NAME, load_predictions

ABLATION_ORDER = ("a", "v", "av")


def new_dir(parent: str | Path, name: str) -> Path:
    """Create and return `parent/name`, or `name-2`, `name-3`, ... when it exists: never reuse a folder."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        path = parent / (name if k == 1 else f"{name}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FerError(f"too many earlier results named {name} in {parent}; move some away")


def write_json(path: str | Path, data) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default))


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """A CSV with `header` and `rows`; floats with 6 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in row])
    return atomic_write_text(path, buffer.getvalue())


def fmt(value: Optional[float]) -> str:
    """A fraction as a percentage with 2 decimals (0.875 -> '87.50'); None (undefined, e.g. the std of one
    fold) -> 'n/a'."""
    return "n/a" if value is None else f"{100 * value:.2f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def per_class_markdown(metrics: dict) -> str:
    rows = [(name, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), m["support"])
            for name, m in metrics["per_class"].items()]
    return markdown_table(("class", "precision %", "recall %", "F1 %", "clips"), rows)


def read_block(path: str | Path, name: str) -> str:
    """What stands between `<!-- name:start -->` and `<!-- name:end -->` in `path` (FerError when they are not there)."""
    return _split_block(Path(path), name)[1]


def replace_block(path: str | Path, name: str, text: str) -> Path:
    """Replace what stands between `<!-- name:start -->` and `<!-- name:end -->` in `path` (they must be there)."""
    head, _, tail = _split_block(Path(path), name)
    return atomic_write_text(path, f"{head}<!-- {name}:start -->\n{text.rstrip()}\n<!-- {name}:end -->{tail}")


def _split_block(path: Path, name: str) -> tuple[str, str, str]:
    """(before the start marker, between the markers, after the end marker) of `path`'s text."""
    content = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in content or end not in content:
        raise FerError(f"{path} has no {start} ... {end} block to write into")
    head, rest = content.split(start, 1)
    block, tail = rest.split(end, 1)
    return head, block, tail


def report_from_predictions(source, out_dir: str | Path, subtitle: str = "", info: Optional[dict] = None) -> dict:
    """Write metrics.json, per_class.csv, confusion.png (clips and row percentages) and report.md into
    `out_dir` from per-clip predictions alone (a Predictions, a predictions.csv or its folder); writes
    predictions.csv too when it is not there. `subtitle` names the split/fold on every figure; `info`
    (what was evaluated) is stored in metrics.json. Returns the metrics dict."""
    from fer_lib.plots import confusion_figure, save_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = load_predictions(source)
    if not (out_dir / CSV_NAME).is_file():
        pred.write_csv(out_dir / CSV_NAME)
    info = dict(info or {})
    metrics = {**pred.metrics(), "subtitle": subtitle, **info}
    write_json(out_dir / "metrics.json", metrics)
    write_csv(out_dir / "per_class.csv", ("class", "precision", "recall", "f1", "support"),
              [(name, m["precision"], m["recall"], m["f1"], m["support"]) for name, m in metrics["per_class"].items()])
    cm = np.array(metrics["confusion"])
    title = "Confusion matrix" + (f", {info['modalities_name']}" if info.get("modalities_name") else "")
    save_png(confusion_figure(cm, EMOTIONS, title=title, subtitle=subtitle), out_dir / "confusion.png")
    lines = [f"# Evaluation: {subtitle}" if subtitle else "# Evaluation", ""]
    lines += [f"- {k}: {v}" for k, v in info.items() if isinstance(v, (str, int, float))] + [""]
    lines += [markdown_table(("WAR %", "UAR %", "macro-F1 %", "clips"),
                             [(fmt(metrics["war"]), fmt(metrics["uar"]), fmt(metrics["macro_f1"]), metrics["clips"])]),
              "", per_class_markdown(metrics), "",
              "![confusion matrix: clips and % of the row](confusion.png)", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
    return metrics


def ablation_table(results: dict[str, dict], out_dir: str | Path, subtitle: str = "") -> list[dict]:
    """One row per modality mode ({"a": metrics, "v": ..., "av": ...}) as ablation.csv/.md/.json/.png."""
    from fer_lib.plots import bars_figure, save_png

    out_dir = Path(out_dir)
    rows = [{"modalities": flag, "mode": modality_names.display_name(flag),
             **{k: results[flag][k] for k in SUMMARY_METRICS}, "clips": results[flag]["clips"]}
            for flag in sorted(results, key=ABLATION_ORDER.index)]
    write_csv(out_dir / "ablation.csv", list(rows[0]), [list(row.values()) for row in rows])
    md = [f"# Modality ablation: {subtitle}" if subtitle else "# Modality ablation", "", ablation_markdown(rows), ""]
    atomic_write_text(out_dir / "ablation.md", "\n".join(md))
    write_json(out_dir / "ablation.json", {"subtitle": subtitle, "rows": rows})
    table = {r["mode"]: {k: r[k] for k in SUMMARY_METRICS} for r in rows}
    save_png(bars_figure(table, SUMMARY_METRICS, title="Modality ablation", subtitle=subtitle), out_dir / "ablation.png")
    return rows


def ablation_markdown(rows: list[dict]) -> str:
    """The rows of `ablation_table` (ablation.json) as a markdown table, with what the modes mean."""
    return "\n".join(["Same checkpoint, same clips; an absent modality is replaced by the model's learned missing token.",
                      "", markdown_table(("mode", "WAR %", "UAR %", "macro-F1 %", "clips"),
                                         [(r["mode"], fmt(r["war"]), fmt(r["uar"]), fmt(r["macro_f1"]), r["clips"])
                                          for r in rows])])
