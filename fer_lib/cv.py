"""Cross-validation over actor folds: train and evaluate every fold, then mean ± std of each metric.

    python -m fer_lib.cv --data_dir CACHE --name NAME [--root ROOT | --cv_dir DIR] [--config_type tiny]
                         [--n_folds 6] [--folds 0,1,...] [--modalities av|a|v] [--ablation]
                         [--max_epochs N --batch_size B ...: the training command's flags]

or, in a notebook, `cross_validate(data_dir, cv_dir, ...) -> summary dict`.

The protocol: `fer_lib.data.splits.kfold_splits`, by default 6 folds of 4 consecutive actors held out
for test (1-4, 5-8, ..., 21-24), the folds HiCMAE (WAR 87.99 / UAR 87.96) and published RAVDESS
results use; unlike HiCMAE, validation (early stopping, best checkpoint) uses separate actors inside
the training part, never the test fold. Every figure names the folds.

Layout (`cv/<name>/` on Drive, `DriveLayout.cv(name)`):

    cv/<name>/
        fold_<k>/                 the fold's training run (config.json, split.json, checkpoints/, metrics ...)
            eval/best-test-av/    its test evaluation (`fer_lib.evaluate`): predictions.csv, metrics.json, PNGs
            fold_result.json      written last: the fold is finished
        summary.json              per-fold metrics, mean and std of WAR / UAR / macro-F1, the summed
                                  confusion matrix, pooled metrics over all test predictions
        summary.md, folds.csv     the same as tables
        confusion_summed.png, confusion_summed_normalized.png
        predictions_all.csv       every fold's test predictions (each clip once over a full CV)

Resumable per fold: a fold with `fold_result.json` is skipped; an interrupted fold is trained again
with the same run folder, which the trainer continues from its `last` checkpoint; a fold trained but
not evaluated is only evaluated. `std` is the sample standard deviation over folds (ddof=1; 0 for a
single fold). "Pooled" metrics are computed once over all folds' test clips together.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fer_lib import EMOTIONS
from fer_lib.errors import one_line
from fer_lib.evaluate import (
    SUMMARY_METRICS, EvaluationError, Predictions, actor_ranges, fmt, load_predictions, markdown_table,
    metrics_from_predictions, write_json,
)

FOLD_RESULT = "fold_result.json"
METRIC_NAMES = {"war": "WAR", "uar": "UAR", "macro_f1": "macro-F1"}


class CrossValidationError(EvaluationError):
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
        raise CrossValidationError(f"cannot read {path} ({exc})") from None


def fold_label(result: dict) -> str:
    """'fold 0/6: test actors 1-4'."""
    return f"{result.get('split_name') or 'fold ' + str(result['fold'])}: test actors {actor_ranges(result['test_actors'])}"


def aggregate(cv_dir: str | Path, folds: Optional[Sequence[int]] = None, name: Optional[str] = None) -> dict:
    """Summarise the finished folds of `cv_dir` (all of them, or `folds`): summary.json/.md, folds.csv,
    the summed confusion matrix (PNG, raw and row-normalised) and predictions_all.csv. Returns the summary."""
    from fer_lib.plots import bars_figure, confusion_figure, save_png

    cv_dir = Path(cv_dir)
    folds = sorted(finished_folds(cv_dir) if folds is None else folds)
    if not folds:
        raise CrossValidationError(f"no finished fold in {cv_dir} (no fold_*/{FOLD_RESULT})")
    results = [read_fold(cv_dir, k) for k in folds]
    preds = [load_predictions(fold_dir(cv_dir, k) / r["eval_dir"]) for k, r in zip(folds, results)]
    per_fold = [metrics_from_predictions(p) for p in preds]  # recomputed from each predictions.csv
    summed = np.sum([np.array(m["confusion"]) for m in per_fold], axis=0)
    pooled_pred = Predictions(
        paths=[path for p in preds for path in p.paths], actors=np.concatenate([p.actors for p in preds]),
        labels=np.concatenate([p.labels for p in preds]), preds=np.concatenate([p.preds for p in preds]),
        probs=np.concatenate([p.probs for p in preds]))
    pooled = metrics_from_predictions(pooled_pred)
    stats = {}
    for metric in SUMMARY_METRICS:
        values = np.array([m[metric] for m in per_fold], np.float64)
        stats[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                         "min": float(values.min()), "max": float(values.max()), "per_fold": values.tolist()}
    n_folds = results[0].get("n_folds")
    protocol = (f"{len(folds)} of {n_folds} actor folds (test actors held out per fold: "
                + "; ".join(f"fold {r['fold']}: {actor_ranges(r['test_actors'])}" for r in results) + ")")
    if n_folds == 6 and len(folds) == 6:
        protocol += "; the 6 folds of 4 consecutive actors used by HiCMAE and published RAVDESS results"
    name = name or cv_dir.name
    modalities = results[0].get("modalities", "av")
    summary = {
        "name": name, "cv_dir": str(cv_dir), "folds": folds, "n_folds": n_folds, "protocol": protocol,
        "modalities": modalities, "std": "sample standard deviation over folds (ddof=1)",
        "metrics": stats, "pooled": {k: pooled[k] for k in SUMMARY_METRICS},
        "confusion_summed": summed.tolist(), "classes": list(EMOTIONS), "clips": int(summed.sum()),
        "per_fold": [{"fold": r["fold"], "split_name": r.get("split_name"), "test_actors": r["test_actors"],
                      "val_actors": r.get("val_actors"), "clips": m["clips"], **{k: m[k] for k in SUMMARY_METRICS},
                      "eval_dir": str(Path(f"fold_{k}") / r["eval_dir"])}
                     for k, r, m in zip(folds, results, per_fold)],
    }
    write_json(cv_dir / "summary.json", summary)
    with open(cv_dir / "folds.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("fold", "test_actors", "clips", *SUMMARY_METRICS))
        for row in summary["per_fold"]:
            writer.writerow((row["fold"], actor_ranges(row["test_actors"]), row["clips"],
                             *(f"{row[k]:.6f}" for k in SUMMARY_METRICS)))
        for label, key in (("mean", "mean"), ("std", "std")):
            writer.writerow((label, "", summary["clips"], *(f"{stats[k][key]:.6f}" for k in SUMMARY_METRICS)))
    pooled_pred.write_csv(cv_dir / "predictions_all.csv")
    subtitle = f"{name}: {protocol}"
    short = (f"{name}: fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))} of {n_folds}, "
             f"test actors {actor_ranges(pooled_pred.actors)} (each clip tested once)")
    save_png(confusion_figure(summed, normalize=False, title="Summed confusion matrix over folds", subtitle=short),
             cv_dir / "confusion_summed.png")
    save_png(confusion_figure(summed, normalize=True, title="Summed confusion matrix over folds", subtitle=short),
             cv_dir / "confusion_summed_normalized.png")
    table = {f"fold {r['fold']}": {k: m[k] for k in SUMMARY_METRICS} for r, m in zip(results, per_fold)}
    save_png(bars_figure(table, SUMMARY_METRICS, title="Metrics per fold", subtitle=short), cv_dir / "folds.png")
    headline = ", ".join(f"{METRIC_NAMES[k]} {fmt(stats[k]['mean'])} ± {fmt(stats[k]['std'])}" for k in SUMMARY_METRICS)
    md = [f"# Cross-validation: {name}", "", f"**{headline} %** (mean ± std over {len(folds)} folds)", "",
          f"Protocol: {protocol}.", f"Modalities: {modalities}.", "",
          markdown_table(("metric", "mean %", "std %", "min %", "max %", "pooled %"),
                         [(METRIC_NAMES[k], fmt(stats[k]["mean"]), fmt(stats[k]["std"]), fmt(stats[k]["min"]),
                           fmt(stats[k]["max"]), fmt(pooled[k])) for k in SUMMARY_METRICS]), "",
          markdown_table(("fold", "test actors", "clips", "WAR %", "UAR %", "macro-F1 %"),
                         [(r["fold"], actor_ranges(r["test_actors"]), r["clips"], fmt(r["war"]), fmt(r["uar"]),
                           fmt(r["macro_f1"])) for r in summary["per_fold"]]), "",
          f"std: {summary['std']}. Pooled: one computation over the test clips of all folds together.", "",
          "![summed confusion](confusion_summed.png) ![row-normalised](confusion_summed_normalized.png)", ""]
    (cv_dir / "summary.md").write_text("\n".join(md))
    return summary


def _ablation_summary(cv_dir: Path, folds: Sequence[int], results: list[dict]) -> Optional[dict]:
    """Mean and std per modality mode when every fold was evaluated with the ablation."""
    if not all(r.get("ablation_dir") for r in results):
        return None
    out = {}
    for flag in ("a", "v", "av"):
        per_fold = [metrics_from_predictions(fold_dir(cv_dir, k) / r["ablation_dir"] / flag)
                    for k, r in zip(folds, results)]
        out[flag] = {m: {"mean": float(np.mean([f[m] for f in per_fold])),
                         "std": float(np.std([f[m] for f in per_fold], ddof=1)) if len(per_fold) > 1 else 0.0}
                     for m in SUMMARY_METRICS}
    return out


def cross_validate(data_dir: str | Path, cv_dir: str | Path, model_config="tiny", train_config=None,
                   folds: Optional[Sequence[int]] = None, ablation: bool = False, batch_size: Optional[int] = None,
                   show_progress: bool = True, verbose: bool = True) -> dict:
    """Train and evaluate each actor fold into `cv_dir/fold_<k>/`, then `aggregate` (module docstring).

    model_config: a preset name or ModelConfig; train_config: TrainConfig (its `fold` is set per fold,
    its `modalities` is also the evaluation's). folds: which folds to run now (default all). ablation:
    also evaluate audio-only / visual-only / both on each fold's test actors. Returns the summary of all
    finished folds, with "status": {fold: "done" | "skipped" | "resumed" | "evaluated"} for this call.
    """
    import dataclasses

    from fer_lib.config import TrainConfig
    from fer_lib.data.dataset import list_cached_clips
    from fer_lib.data.index import DataError
    from fer_lib.data.splits import kfold_splits
    from fer_lib.evaluate import evaluate
    from fer_lib.train import train
    from fer_lib.training import checkpoint

    cv_dir = Path(cv_dir).expanduser()
    data_dir = Path(data_dir).expanduser()
    train_cfg = train_config or TrainConfig()
    try:
        splits = kfold_splits({c.actor for c in list_cached_clips(data_dir)})
    except DataError as exc:
        raise CrossValidationError(str(exc)) from None
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
        result = train(data_dir, cv_dir, model_config, fold_cfg, run_name=fd.name, show_progress=show_progress)
        ev_kwargs = dict(out=fd / "eval", split="test", batch_size=batch_size or fold_cfg.batch_size,
                         progress=show_progress, verbose=verbose)
        ev = evaluate(result.best_checkpoint, data_dir, modalities=fold_cfg.modalities, **ev_kwargs)
        record = {"fold": k, "n_folds": len(splits), "split_name": splits[k].name,
                  "test_actors": list(splits[k].test), "val_actors": list(splits[k].val),
                  "train_actors": list(splits[k].train), "modalities": fold_cfg.modalities,
                  "eval_dir": str(Path(ev["out_dir"]).relative_to(fd)),
                  "metrics": {m: ev["results"][fold_cfg.modalities][m] for m in SUMMARY_METRICS},
                  "epochs": result.epochs, "best_epoch": result.best_epoch, "checkpoint": str(result.best_checkpoint)}
        if ablation:
            ab = evaluate(result.best_checkpoint, data_dir, ablation=True, **ev_kwargs)
            record["ablation_dir"] = str(Path(ab["out_dir"]).relative_to(fd))
        write_json(fd / FOLD_RESULT, record)  # last: the fold is finished
    summary = aggregate(cv_dir)
    ablation_stats = _ablation_summary(cv_dir, summary["folds"], [read_fold(cv_dir, k) for k in summary["folds"]])
    if ablation_stats:
        summary["ablation"] = ablation_stats
        write_json(cv_dir / "summary.json", summary)
        rows = [(flag, *(f"{fmt(s[m]['mean'])} ± {fmt(s[m]['std'])}" for m in SUMMARY_METRICS))
                for flag, s in ablation_stats.items()]
        with open(cv_dir / "summary.md", "a") as handle:
            handle.write("\n## Modality ablation (mean ± std over folds, %)\n\n"
                         + markdown_table(("modalities", "WAR", "UAR", "macro-F1"), rows) + "\n")
    if verbose:
        print((cv_dir / "summary.md").read_text())
    return {**summary, "status": status}


def main(argv: Optional[list[str]] = None) -> int:
    from fer_lib.train import USER_ERRORS, configs_from_args, parse_args

    parser = argparse.ArgumentParser(
        prog="python -m fer_lib.cv", description=__doc__.split("\n")[0], allow_abbrev=False,
        epilog="Every other flag is the training command's (python -m fer_lib.train --help), e.g. "
               "--config_type, --max_epochs, --batch_size, --lr, --modalities; --fold, --run_name and "
               "--resume_from are set per fold and not accepted here.")
    parser.add_argument("--data_dir", required=True, help="the preprocessing cache")
    parser.add_argument("--name", help="cross-validation name: results in <root>/cv/<name>/")
    parser.add_argument("--root", help="Drive layout root (default MyDrive/fer in Colab, demo_out elsewhere)")
    parser.add_argument("--cv_dir", help="explicit results folder instead of <root>/cv/<name>")
    parser.add_argument("--folds", help="comma-separated folds to run now (default all)")
    parser.add_argument("--ablation", action="store_true", help="also audio-only / visual-only per fold")
    args, rest = parser.parse_known_args(argv)
    for flag in ("--fold", "--run_name", "--resume_from", "--save_dir"):
        if any(r == flag or r.startswith(flag + "=") for r in rest):
            print(f"error: {flag} is set per fold by cross-validation; leave it out", file=sys.stderr)
            return 2
    if not args.cv_dir and not args.name:
        print("error: give --name (results in <root>/cv/<name>) or --cv_dir", file=sys.stderr)
        return 2
    try:
        train_args = parse_args(["--data_dir", args.data_dir, *rest])
        model_cfg, train_cfg = configs_from_args(train_args)
        if args.cv_dir:
            cv_dir = Path(args.cv_dir)
        else:
            from fer_lib.paths import default_layout

            cv_dir = default_layout(args.root).cv(args.name)
        folds = [int(k) for k in args.folds.split(",")] if args.folds else None
        cross_validate(args.data_dir, cv_dir, model_cfg, train_cfg, folds=folds, ablation=args.ablation)
    except (EvaluationError, *USER_ERRORS) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again; finished folds are skipped, the current one resumes",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
