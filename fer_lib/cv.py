"""Cross-validation over actor folds: train and evaluate every fold, then mean ± std of each metric.

    python -m fer_lib.cv (--cache_dir CACHE | --data_dir RAW) --name NAME [--root ROOT | --cv_dir DIR]
                         [--recipe reference] [--folds 0,1,...] [--ablation] [--config_type tiny]
                         [--modalities av|a|v] [--max_epochs N --batch_size B ...: the training command's flags]

or, in a notebook, `cross_validate(cache_dir, cv_dir, ...) -> summary dict`.

`--recipe reference` runs the named reference recipe (`fer_lib.config.get_recipe`): its preset and
training settings become the flags' defaults (a flag given explicitly still wins), and `--ablation`
is on, so summary.md has WAR, UAR and macro-F1 per fold, mean and std, for audio only, visual only
and both. `python -m fer_lib.results --cv_dir DIR` then writes that table into README's Results.

The protocol: `fer_lib.data.splits.kfold_splits`, 6 folds of 4 consecutive actors held out for test
(1-4, 5-8, ..., 21-24), the folds HiCMAE (WAR 87.99 / UAR 87.96) and published RAVDESS results use;
unlike HiCMAE, validation (early stopping, best checkpoint) uses separate actors inside the training
part, never the test fold. Every figure names the folds.

Layout (`cv/<name>/` on Drive, `DriveLayout.cv(name)`):

    cv/<name>/
        fold_<k>/                 the fold's training run (config.json, split.json, checkpoints/, metrics ...)
            eval/best-test-av/    its test evaluation (`fer_lib.evaluate`): predictions.csv, metrics.json, PNGs
            eval/best-test-ablation/  with --ablation: audio only, visual only and both
            fold_result.json      written last: the fold is finished
        summary.json              per-fold metrics, mean and std of WAR / UAR / macro-F1, the summed
                                  confusion matrix, pooled metrics over all test predictions, and the
                                  ablation's mean and std per modality mode when every fold has one
        summary.md, folds.csv     the same as tables (summary.md: per fold and modality too, with --ablation)
        confusion_summed.png, folds.png
        predictions_all.csv       every fold's test predictions (each clip once over a full CV)

Resumable per fold: a fold with `fold_result.json` is skipped; an interrupted fold is trained again
with the same run folder, which the trainer continues from its `last` checkpoint. `std` is the sample
standard deviation over folds (ddof=1; 0 for a single fold). "Pooled" metrics are computed once over
all folds' test clips together.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fer_lib import cli
from fer_lib import modalities as modality_names
from fer_lib.config import RECIPES, TrainConfig, get_recipe
from fer_lib.data.ravdess import actor_ranges
from fer_lib.data.splits import DEFAULT_FOLDS
from fer_lib.errors import FerError
from fer_lib.metrics import METRIC_NAMES, SUMMARY_METRICS
from fer_lib.predictions import Predictions, load_predictions
from fer_lib.reports import ABLATION_ORDER, fmt, markdown_table, write_csv, write_json
from fer_lib.fileio import atomic_write_text, check_writable
from fer_lib.training import run_folder

FOLD_RESULT = "fold_result.json"


class CrossValidationError(FerError):
    """Cross-validation cannot run; the message is one line."""


def fold_dir(cv_dir: str | Path, fold: int) -> Path:
    return Path(cv_dir) / f"fold_{fold}"


def finished_folds(cv_dir: str | Path) -> list[int]:
    """The folds of `cv_dir` with a fold_result.json, sorted."""
    out = []
    for path in Path(cv_dir).glob(f"fold_*/{FOLD_RESULT}"):
        try:
            out.append(int(path.parent.name.split("_", 1)[1]))
        except ValueError:
            continue
    return sorted(out)


def read_fold(cv_dir: str | Path, fold: int) -> dict:
    path = fold_dir(cv_dir, fold) / FOLD_RESULT
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CrossValidationError(f"cannot read {path} ({exc}); delete it to run that fold again") from None


def mean_std(values: Sequence[float]) -> dict:
    """mean, sample std (ddof=1; None for one value, where it is undefined: shown as "n/a"), min, max and the
    values themselves."""
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "min": float(values.min()), "max": float(values.max()), "per_fold": values.tolist()}


def _protocol(results: list[dict], n_folds: int) -> str:
    text = (f"{len(results)} of {n_folds} actor folds (test actors held out per fold: "
            + "; ".join(f"fold {r['fold']}: {actor_ranges(r['test_actors'])}" for r in results) + ")")
    if n_folds == 6 and len(results) == 6:
        text += "; the 6 folds of 4 consecutive actors used by HiCMAE and published RAVDESS results"
    return text


def _ablation_stats(cv_dir: Path, folds: Sequence[int], results: list[dict]) -> Optional[dict]:
    """Per modality mode, each metric's mean, std and per-fold values (`mean_std`) when every fold was
    evaluated with the ablation; None otherwise."""
    if not all(r.get("ablation_dir") for r in results):
        return None
    stats = {}
    for flag in ABLATION_ORDER:
        per_fold = [load_predictions(fold_dir(cv_dir, k) / r["ablation_dir"] / flag).metrics()
                    for k, r in zip(folds, results)]
        stats[flag] = {m: mean_std([f[m] for f in per_fold]) for m in SUMMARY_METRICS}
    return stats


def modality_table(summary: dict) -> str:
    """WAR, UAR and macro-F1 per fold and modality mode, then mean and std per mode: the 6-fold results table."""
    rows = []
    for flag, stats in summary["ablation"].items():
        name = modality_names.display_name(flag)
        for i, row in enumerate(summary["per_fold"]):
            rows.append((name, row["fold"], actor_ranges(row["test_actors"]),
                         *(fmt(stats[m]["per_fold"][i]) for m in SUMMARY_METRICS)))
        for label in ("mean", "std"):
            rows.append((name, f"**{label}**", "", *(f"**{fmt(stats[m][label])}**" for m in SUMMARY_METRICS)))
    return markdown_table(("modalities", "fold", "test actors", "WAR %", "UAR %", "macro-F1 %"), rows)


def aggregate(cv_dir: str | Path, folds: Optional[Sequence[int]] = None, name: Optional[str] = None) -> dict:
    """Summarise the finished folds of `cv_dir` (all of them, or `folds`): summary.json/.md, folds.csv,
    the summed confusion matrix (PNG, raw and row-normalised), folds.png and predictions_all.csv.
    Returns the summary."""
    from fer_lib.plots import bars_figure, confusion_figure, save_png

    cv_dir = Path(cv_dir)
    folds = sorted(finished_folds(cv_dir) if folds is None else folds)
    if not folds:
        raise CrossValidationError(f"no finished fold in {cv_dir} (no fold_*/{FOLD_RESULT})")
    results = [read_fold(cv_dir, k) for k in folds]
    preds = [load_predictions(fold_dir(cv_dir, k) / r["eval_dir"]) for k, r in zip(folds, results)]
    per_fold = [p.metrics() for p in preds]  # recomputed from each predictions.csv
    pooled_pred = Predictions.concatenate(preds)
    summed = pooled_pred.confusion()
    stats = {metric: mean_std([m[metric] for m in per_fold]) for metric in SUMMARY_METRICS}
    name = name or cv_dir.name
    summary = {
        "name": name, "cv_dir": str(cv_dir), "folds": folds, "n_folds": results[0].get("n_folds"),
        "protocol": _protocol(results, results[0].get("n_folds")), "modalities": results[0].get("modalities", "av"),
        "std": "sample standard deviation over folds (ddof=1; n/a for one fold)", "metrics": stats,
        "pooled": {k: v for k, v in pooled_pred.metrics().items() if k in SUMMARY_METRICS},
        "confusion_summed": summed.tolist(), "classes": pooled_pred.metrics()["classes"], "clips": int(summed.sum()),
        "per_fold": [{"fold": r["fold"], "split_name": r.get("split_name"), "test_actors": r["test_actors"],
                      "val_actors": r.get("val_actors"), "clips": m["clips"], **{k: m[k] for k in SUMMARY_METRICS},
                      "eval_dir": str(Path(f"fold_{k}") / r["eval_dir"])}
                     for k, r, m in zip(folds, results, per_fold)],
        "ablation": _ablation_stats(cv_dir, folds, results),
    }
    write_json(cv_dir / "summary.json", summary)
    write_csv(cv_dir / "folds.csv", ("fold", "test_actors", "clips", *SUMMARY_METRICS),
              [(row["fold"], actor_ranges(row["test_actors"]), row["clips"], *(row[k] for k in SUMMARY_METRICS))
               for row in summary["per_fold"]]
              + [(label, "", summary["clips"], *(stats[k][label] for k in SUMMARY_METRICS)) for label in ("mean", "std")])
    pooled_pred.write_csv(cv_dir / "predictions_all.csv")
    short = (f"{name}: fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))} of {summary['n_folds']}, "
             f"test actors {actor_ranges(pooled_pred.actors)} (each clip tested once)")
    save_png(confusion_figure(summed, title="Summed confusion matrix over folds", subtitle=short),
             cv_dir / "confusion_summed.png")
    table = {f"fold {r['fold']}": {k: m[k] for k in SUMMARY_METRICS} for r, m in zip(results, per_fold)}
    save_png(bars_figure(table, SUMMARY_METRICS, title="Metrics per fold", subtitle=short), cv_dir / "folds.png")
    atomic_write_text(cv_dir / "summary.md", summary_markdown(summary))
    return summary


def summary_markdown(summary: dict) -> str:
    """summary.md: the headline mean ± std, the metric table, the per-fold table, the ablation if any."""
    stats, pooled = summary["metrics"], summary["pooled"]
    headline = ", ".join(f"{METRIC_NAMES[k]} {fmt(stats[k]['mean'])} ± {fmt(stats[k]['std'])}" for k in SUMMARY_METRICS)
    md = [f"# Cross-validation: {summary['name']}", "",
          f"**{headline} %** (mean ± std over {len(summary['folds'])} fold{'s' if len(summary['folds']) > 1 else ''})", "",
          f"Protocol: {summary['protocol']}.", f"Modalities: {summary['modalities']}.", "",
          markdown_table(("metric", "mean %", "std %", "min %", "max %", "pooled %"),
                         [(METRIC_NAMES[k], fmt(stats[k]["mean"]), fmt(stats[k]["std"]), fmt(stats[k]["min"]),
                           fmt(stats[k]["max"]), fmt(pooled[k])) for k in SUMMARY_METRICS]), "",
          markdown_table(("fold", "test actors", "clips", "WAR %", "UAR %", "macro-F1 %"),
                         [(r["fold"], actor_ranges(r["test_actors"]), r["clips"], fmt(r["war"]), fmt(r["uar"]),
                           fmt(r["macro_f1"])) for r in summary["per_fold"]]), "",
          f"std: {summary['std']}. Pooled: one computation over the test clips of all folds together.", "",
          "![summed confusion matrix: clips and % of the row](confusion_summed.png)", ""]
    if summary.get("ablation"):
        rows = [(flag, *(f"{fmt(s[m]['mean'])} ± {fmt(s[m]['std'])}" for m in SUMMARY_METRICS))
                for flag, s in summary["ablation"].items()]
        md += ["## Modality ablation (mean ± std over folds, %)", "",
               markdown_table(("modalities", "WAR", "UAR", "macro-F1"), rows), "",
               "## Per fold and modality", "", modality_table(summary), ""]
    return "\n".join(md)


def cross_validate(cache_dir: Optional[str | Path], cv_dir: str | Path, model_config="lightweight",
                   train_config: Optional[TrainConfig] = None, folds: Optional[Sequence[int]] = None,
                   ablation: bool = False, batch_size: Optional[int] = None, show_progress: bool = True,
                   verbose: bool = True, data_dir: Optional[str | Path] = None) -> dict:
    """Train and evaluate each actor fold into `cv_dir/fold_<k>/`, then `aggregate` (module docstring).

    cache_dir / data_dir: as in `fer_lib.train.train`. model_config: a preset name or ModelConfig;
    train_config: TrainConfig (its `fold` is set per fold, its `modalities` is also the evaluation's).
    folds: which folds to run now (default all). ablation: also evaluate audio-only / visual-only / both
    on each fold's test actors. Returns the summary of all finished folds, with
    "status": {fold: "done" | "skipped" | "resumed"} for this call.
    """
    from fer_lib.data import cache
    from fer_lib.data.splits import kfold_splits
    from fer_lib.evaluate import evaluate
    from fer_lib.preprocess import ensure_cache
    from fer_lib.train import train
    from fer_lib.training import checkpoint

    cv_dir = check_writable(cv_dir)  # before any work
    cache_dir = ensure_cache(data_dir, cache_dir)
    train_cfg = train_config or TrainConfig()
    splits = kfold_splits({c.actor for c in cache.list_clips(cache_dir)})
    folds = list(range(len(splits))) if folds is None else [int(k) for k in folds]
    bad = [k for k in folds if not 0 <= k < len(splits)]
    if bad:
        raise CrossValidationError(f"folds must be in 0..{len(splits) - 1}, got {bad}")
    cv_dir.mkdir(parents=True, exist_ok=True)
    status = {}
    for k in folds:
        fd = fold_dir(cv_dir, k)
        if (fd / FOLD_RESULT).is_file():
            status[k] = "skipped"
            if verbose:
                print(f"fold {k}: finished earlier, skipped ({fd / FOLD_RESULT})")
            continue
        status[k] = "resumed" if checkpoint.find(fd) is not None else "done"
        if verbose:
            print(f"fold {k}/{len(splits)}: test actors {actor_ranges(splits[k].test)}"
                  + (" (resuming its run)" if status[k] == "resumed" else ""))
        fold_cfg = dataclasses.replace(train_cfg, fold=k)
        result = train(cache_dir, cv_dir, model_config, fold_cfg, run_name=fd.name, show_progress=show_progress)
        ev_kwargs = dict(out=fd / "eval", split="test", batch_size=batch_size or fold_cfg.batch_size,
                         progress=show_progress, verbose=verbose)
        ev = evaluate(result.best_checkpoint, cache_dir, modalities=fold_cfg.modalities, **ev_kwargs)
        record = {"fold": k, "n_folds": len(splits), "split_name": splits[k].name,
                  "test_actors": list(splits[k].test), "val_actors": list(splits[k].val),
                  "train_actors": list(splits[k].train), "modalities": fold_cfg.modalities,
                  "eval_dir": str(Path(ev["out_dir"]).relative_to(fd)),
                  "metrics": {m: ev["results"][fold_cfg.modalities][m] for m in SUMMARY_METRICS},
                  "epochs": result.epochs, "best_epoch": result.best_epoch, "checkpoint": str(result.best_checkpoint)}
        if ablation:
            ab = evaluate(result.best_checkpoint, cache_dir, ablation=True, **ev_kwargs)
            record["ablation_dir"] = str(Path(ab["out_dir"]).relative_to(fd))
        write_json(fd / FOLD_RESULT, record)  # last: the fold is finished
    summary = aggregate(cv_dir)
    if verbose:
        print((cv_dir / "summary.md").read_text())
    return {**summary, "status": status}


def recipe_defaults(name: str) -> dict:
    """The command-line defaults that make `configs_from_args` build recipe `name` (`get_recipe`)."""
    from fer_lib.train import TRAINING_FLAG_TYPES

    model, train = get_recipe(name)
    return {**{flag: getattr(train, flag) for flag in (*TRAINING_FLAG_TYPES, "early_stopping_metric", "modalities")},
            "config_type": model.preset, "modality_dropout": model.fusion.modality_dropout,
            "label_smoothing": model.classifier.label_smoothing}


def _fold_list(text: str) -> list[int]:
    try:
        folds = [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fold numbers such as 0,1,2, got {text!r}") from None
    if any(not 0 <= k < DEFAULT_FOLDS for k in folds):
        raise argparse.ArgumentTypeError(f"fold numbers lie in 0..{DEFAULT_FOLDS - 1}, got {text!r}")
    return folds


class _SetPerFold(argparse.Action):
    """A training flag that cross-validation sets for each fold itself."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is set per fold by cross-validation; leave it out")


@cli.command(interrupted="run the same command again; finished folds are skipped, the current one resumes")
def main(argv: Optional[list[str]] = None) -> int:
    from fer_lib.train import PER_RUN_FLAGS, add_training_flags, configs_from_args

    parser = cli.ArgumentParser(
        prog="python -m fer_lib.cv", description=__doc__.split("\n")[0],
        epilog="Every training flag of python -m fer_lib.train is accepted, except those set per fold: "
               + ", ".join(PER_RUN_FLAGS) + ".")
    parser.add_argument("--name", help="cross-validation name: results in <root>/cv/<name>/")
    parser.add_argument("--root", help="Drive layout root (default MyDrive/fer in Colab, demo_out elsewhere)")
    parser.add_argument("--cv_dir", help="explicit results folder instead of <root>/cv/<name>")
    parser.add_argument("--folds", type=_fold_list, help="comma-separated folds to run now (default all)")
    parser.add_argument("--ablation", action="store_true", help="also audio-only / visual-only per fold")
    parser.add_argument("--recipe", choices=RECIPES,
                        help="a named recipe: its preset and training settings become the defaults, --ablation is on")
    add_training_flags(parser, per_run=False)
    for flag in PER_RUN_FLAGS:
        parser.add_argument(flag, nargs="*", action=_SetPerFold, help=argparse.SUPPRESS)
    recipe = parser.parse_known_args(argv)[0].recipe
    if recipe:
        parser.set_defaults(**recipe_defaults(recipe), ablation=True)
    args = parser.parse_args(argv)
    if not args.cv_dir and not args.name:
        parser.error("give --name (results in <root>/cv/<name>) or --cv_dir")
    model_cfg, train_cfg = configs_from_args(args)
    if args.cv_dir:
        cv_dir = Path(args.cv_dir)
    else:
        from fer_lib.paths import default_layout

        cv_dir = default_layout(args.root).cv(run_folder.check_name(args.name, "cross-validation name", "tiny_cv"))
    cross_validate(args.cache_dir, cv_dir, model_cfg, train_cfg, folds=args.folds, ablation=args.ablation,
                   data_dir=args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
