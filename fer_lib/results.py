"""Command: README's Results section, generated from a cross-validation summary.

    python -m fer_lib.results [--cv_dir ROOT/cv/NAME] [--readme README.md] [--force]

writes the block between `<!-- results:start -->` and `<!-- results:end -->` of the README: with no
summary (no `--cv_dir`, or no summary.json in it yet) it says that nothing has been measured, but never
over a block that holds measured numbers (that needs `--force`); with one,
the protocol, the machine-independent table of `fer_lib.cv` (WAR, UAR, macro-F1 per fold and modality,
mean and std) and the summary's own name. Published figures are quoted beside ours only with their
fold scheme and source, because numbers from other folds are not directly comparable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from fer_lib import cli
from fer_lib.errors import FerError
from fer_lib.metrics import SUMMARY_METRICS
from fer_lib.reports import fmt, markdown_table, read_block, replace_block

README = Path(__file__).resolve().parents[1] / "README.md"
# (system, modalities, figure, folds, source): the published 8-class actor-independent figures that name their folds.
PUBLISHED = (
    ("HiCMAE-B", "audio+video", "WAR 87.99 / UAR 87.96", "6 folds of 4 consecutive actors (ours)",
     "Sun et al., HiCMAE, 2024"),
    ("Luna-Jiménez et al. (wav2vec2 + action units)", "audio+video", "86.70", "5 folds", "Luna-Jiménez et al., 2022"),
    ("Whisper-large-v3, frozen", "audio", "WA 75.87", "6 random groups of 4 actors", "EmoBox benchmark, 2024"),
)


MEASURED = "Measured:"  # how the text of a block with measured numbers begins


class ResultsError(FerError):
    """The summary cannot be read; one line."""


def results_markdown(summary: Optional[dict]) -> str:
    """The Results section's text for a cross-validation summary (`fer_lib.cv.aggregate`), or for none."""
    from fer_lib.cv import modality_table

    published = markdown_table(("published system", "modalities", "figure %", "folds", "source"), PUBLISHED)
    if summary is None:
        return "\n".join([
            "**Not measured yet.** No RAVDESS result of fer_lib exists: nothing here has been trained on the real "
            "RAVDESS data so far. The figures of the original Vietnamese description were never measured and are "
            "not ours. To measure, run the reference recipe over the 6 actor folds (\"The reference recipe\" above), then regenerate this "
            "section with `python -m fer_lib.results --cv_dir <root>/cv/<name>`.", "",
            "For comparison once measured, published figures with their folds (from other folds they are not "
            "directly comparable):", "", published, ""])
    if summary.get("ablation"):
        table = modality_table(summary)
    else:
        table = markdown_table(("modalities", *(m for m in SUMMARY_METRICS)),
                               [(summary["modalities"], *(f"{fmt(summary['metrics'][m]['mean'])} ± "
                                                         f"{fmt(summary['metrics'][m]['std'])}" for m in SUMMARY_METRICS))])
    return "\n".join([
        f"{MEASURED} cross-validation `{summary['name']}`, {summary['protocol']}. Validation (early stopping) uses "
        "4 training actors, never the test fold. std is the sample standard deviation over folds.", "",
        table, "", "Published figures, with their folds:", "", published, ""])


def load_summary(cv_dir: Optional[str | Path]) -> Optional[dict]:
    """summary.json of `cv_dir`, or None when there is none (no `cv_dir`, or no fold finished in it yet)."""
    if cv_dir is None:
        return None
    if not Path(cv_dir).is_dir():
        raise ResultsError(f"cross-validation folder not found: {cv_dir}")
    path = Path(cv_dir) / "summary.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"cannot read {path} ({exc})") from None


@cli.command()
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.results", description=__doc__.split("\n")[0])
    parser.add_argument("--cv_dir", help="a cross-validation folder (<root>/cv/<name>) with summary.json")
    parser.add_argument("--readme", default=str(README), help="the markdown file whose results block is rewritten")
    parser.add_argument("--force", action="store_true",
                        help="write 'not measured yet' even over a block that holds measured numbers")
    args = parser.parse_args(argv)
    summary = load_summary(args.cv_dir)
    if summary is None and not args.force and read_block(args.readme, "results").strip().startswith(MEASURED):
        why = f"{args.cv_dir} has no summary.json yet" if args.cv_dir else "no --cv_dir was given"
        raise ResultsError(f"{args.readme} holds measured results and {why}: nothing written; pass the --cv_dir "
                           "of a finished cross-validation, or --force to replace them with 'not measured yet'")
    replace_block(args.readme, "results", results_markdown(summary))
    print(f"wrote the results section of {args.readme} ({'from ' + args.cv_dir if summary else 'not measured yet'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
