"""Evaluate a checkpoint on the preprocessing cache: metrics, confusion matrices, per-clip predictions.

    python -m fer_lib.evaluate --checkpoint PATH --data_dir DIR [--out DIR]
                               [--modalities av|a|v] [--split test|val|all] [--ablation]

or, in a notebook, `evaluate(checkpoint, data_dir, ...) -> dict`.

`checkpoint` is a checkpoint folder (`runs/<name>/checkpoints/best`) or a run folder (its `best`
checkpoint is used, `last` when there is no `best`). `data_dir` is the preprocessing cache
(`cache/preprocessed/`, with its `manifest.json`). `split` picks the clips by the actors stored with
the checkpoint (`split.json`): `test` (default), `val`, or `all` (every cached clip; only honest for
actors the model never saw).

Output (default `runs/<name>/eval/`, or `--out`): one new folder per call, never an earlier one
overwritten. Its name says what was measured: `<checkpoint>-<split>-<modalities>` (e.g.
`best-test-av`), or `<checkpoint>-<split>-ablation` with `--ablation`; if that folder exists already,
`-2`, `-3`, ... is appended and the earlier results stay as they are.

    best-test-av/
        predictions.csv          one row per clip: path, actor, true, pred, true_name, pred_name,
                                 p_neutral ... p_surprised (softmax probabilities)
        metrics.json             war (accuracy), uar, macro_f1, per-class precision/recall/f1/support,
                                 the raw confusion matrix, what was evaluated (checkpoint, split, actors)
        per_class.csv            the per-class table
        confusion.png            raw counts;  confusion_normalized.png  row-normalised (recall per row)
        report.md                the same numbers as a markdown table
    best-test-ablation/
        av/ a/ v/                each as above, all three from the same weights
        ablation.csv, ablation.md, ablation.json, ablation.png   one row per modality mode

Everything in metrics.json and every figure is computed from predictions.csv alone
(`report_from_predictions`), so any of them can be recomputed from the CSV; WAR, UAR and macro-F1
come from `fer_lib.metrics` (scikit-learn), the per-class table and confusion matrix from
scikit-learn directly. Every figure names the actors it was measured on.

Bad input ends the command with one line on stderr and exit code 2: a missing checkpoint, a missing
or foreign cache, an unknown modality or split, no cached clip of the requested actors.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from fer_lib import EMOTIONS
from fer_lib.fileio import atomic_write_text

PROB_FIELDS = tuple(f"p_{e}" for e in EMOTIONS)
PREDICTION_FIELDS = ("path", "actor", "true", "pred", "true_name", "pred_name") + PROB_FIELDS
SPLITS = ("test", "val", "all")
MODALITY_NAMES = {"av": "audio+visual", "a": "audio only", "v": "visual only"}
ABLATION_ORDER = ("a", "v", "av")
SUMMARY_METRICS = ("war", "uar", "macro_f1")


class EvaluationError(ValueError):
    """Evaluation cannot run; the message is one line a person can act on."""


# --------------------------------------------------------------------------------------------
# predictions.csv: the one source of every number and figure
# --------------------------------------------------------------------------------------------


@dataclass
class Predictions:
    """Per-clip results: what predictions.csv holds, as arrays."""

    paths: list[str]
    actors: np.ndarray  # int64 [N]
    labels: np.ndarray  # int64 [N] true class
    preds: np.ndarray  # int64 [N] predicted class (argmax of probs)
    probs: np.ndarray  # float64 [N, C] softmax probabilities

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def from_probs(cls, paths: Sequence[str], actors, labels, probs) -> "Predictions":
        probs = np.asarray(probs, np.float64).reshape(len(paths), len(EMOTIONS))
        return cls(list(map(str, paths)), np.asarray(actors, np.int64).reshape(-1),
                   np.asarray(labels, np.int64).reshape(-1), probs.argmax(axis=1).astype(np.int64), probs)

    def subset(self, indices) -> "Predictions":
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Predictions([self.paths[i] for i in idx], self.actors[idx], self.labels[idx], self.preds[idx],
                           self.probs[idx])

    def rows(self, indices=None) -> list[dict]:
        """Plain dicts (the CSV's fields, typed) for `indices` (default all), in that order."""
        idx = range(len(self)) if indices is None else np.asarray(indices, np.int64).reshape(-1)
        return [
            dict(index=int(i), path=self.paths[i], actor=int(self.actors[i]), true=int(self.labels[i]),
                 pred=int(self.preds[i]), true_name=EMOTIONS[self.labels[i]], pred_name=EMOTIONS[self.preds[i]],
                 p_true=float(self.probs[i, self.labels[i]]), p_pred=float(self.probs[i, self.preds[i]]))
            for i in idx
        ]

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(PREDICTION_FIELDS)
            for i in range(len(self)):
                writer.writerow([self.paths[i], int(self.actors[i]), int(self.labels[i]), int(self.preds[i]),
                                 EMOTIONS[self.labels[i]], EMOTIONS[self.preds[i]],
                                 *(f"{p:.6f}" for p in self.probs[i])])
        tmp.replace(path)
        return path

    @classmethod
    def read_csv(cls, path: str | Path) -> "Predictions":
        path = Path(path)
        if not path.is_file():
            raise EvaluationError(f"predictions file not found: {path}")
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [f for f in PREDICTION_FIELDS if f not in (reader.fieldnames or [])]
            if missing:
                raise EvaluationError(f"{path} is not a predictions.csv (missing columns {', '.join(missing)})")
            rows = list(reader)
        return cls(
            paths=[r["path"] for r in rows],
            actors=np.array([int(r["actor"]) for r in rows], np.int64),
            labels=np.array([int(r["true"]) for r in rows], np.int64),
            preds=np.array([int(r["pred"]) for r in rows], np.int64),
            probs=np.array([[float(r[f]) for f in PROB_FIELDS] for r in rows], np.float64).reshape(-1, len(EMOTIONS)),
        )


def load_predictions(source) -> Predictions:
    """A Predictions from a Predictions, a predictions.csv, or an evaluation folder holding one."""
    if isinstance(source, Predictions):
        return source
    path = Path(source)
    if path.is_dir():
        path = path / "predictions.csv"
    return Predictions.read_csv(path)


def confusion(pred: Predictions) -> np.ndarray:
    """int64 [C, C]: rows true class, columns predicted class, over all 8 classes."""
    from sklearn.metrics import confusion_matrix

    if len(pred) == 0:
        return np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
    return confusion_matrix(pred.labels, pred.preds, labels=list(range(len(EMOTIONS)))).astype(np.int64)


def metrics_from_predictions(source) -> dict:
    """WAR, UAR, macro-F1 (`fer_lib.metrics`), per-class precision/recall/F1/support and the confusion
    matrix, all from the per-clip predictions (a Predictions, a predictions.csv or its folder).

    A class without clips in the set has recall 0 and support 0 in the per-class table and is left
    out of UAR (scikit-learn's convention, see `fer_lib.metrics`).
    """
    from sklearn.metrics import precision_recall_fscore_support

    from fer_lib.metrics import classification_metrics

    pred = load_predictions(source)
    if len(pred) == 0:
        raise EvaluationError("no predictions to compute metrics from")
    summary = classification_metrics(pred.labels, pred.preds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, support = precision_recall_fscore_support(
            pred.labels, pred.preds, labels=list(range(len(EMOTIONS))), zero_division=0)
    per_class = {
        name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]), "support": int(support[k])}
        for k, name in enumerate(EMOTIONS)
    }
    return {**summary, "clips": len(pred), "per_class": per_class, "confusion": confusion(pred).tolist(),
            "classes": list(EMOTIONS)}


# --------------------------------------------------------------------------------------------
# Output folders and reports
# --------------------------------------------------------------------------------------------


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
    raise EvaluationError(f"too many earlier results named {name} in {parent}")


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


def actor_ranges(actors: Iterable[int]) -> str:
    """[1, 2, 3, 4, 9] -> '1-4, 9'."""
    actors = sorted(set(int(a) for a in actors))
    if not actors:
        return "none"
    parts, start, prev = [], actors[0], actors[0]
    for a in actors[1:] + [None]:
        if a is not None and a == prev + 1:
            prev = a
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        if a is not None:
            start = prev = a
    return ", ".join(parts)


def fmt(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def per_class_markdown(metrics: dict) -> str:
    rows = [(name, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), m["support"])
            for name, m in metrics["per_class"].items()]
    return markdown_table(("class", "precision %", "recall %", "F1 %", "clips"), rows)


def report_from_predictions(source, out_dir: str | Path, subtitle: str = "", info: Optional[dict] = None) -> dict:
    """Write metrics.json, per_class.csv, confusion.png, confusion_normalized.png and report.md into
    `out_dir` from per-clip predictions alone (a Predictions, a predictions.csv or its folder); writes
    predictions.csv too when it is not there. `subtitle` names the split/fold on every figure; `info`
    (what was evaluated) is stored in metrics.json. Returns the metrics dict."""
    from fer_lib.plots import confusion_figure, save_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = load_predictions(source)
    if not (out_dir / "predictions.csv").is_file():
        pred.write_csv(out_dir / "predictions.csv")
    info = dict(info or {})
    metrics = {**metrics_from_predictions(pred), "subtitle": subtitle, **info}
    write_json(out_dir / "metrics.json", metrics)
    with open(out_dir / "per_class.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("class", "precision", "recall", "f1", "support"))
        for name, m in metrics["per_class"].items():
            writer.writerow((name, f"{m['precision']:.6f}", f"{m['recall']:.6f}", f"{m['f1']:.6f}", m["support"]))
    cm = np.array(metrics["confusion"])
    title = "Confusion matrix" + (f", {info['modalities_name']}" if info.get("modalities_name") else "")
    save_png(confusion_figure(cm, EMOTIONS, normalize=False, title=title, subtitle=subtitle), out_dir / "confusion.png")
    save_png(confusion_figure(cm, EMOTIONS, normalize=True, title=title, subtitle=subtitle),
             out_dir / "confusion_normalized.png")
    lines = [f"# Evaluation: {subtitle}" if subtitle else "# Evaluation", ""]
    lines += [f"- {k}: {v}" for k, v in info.items() if isinstance(v, (str, int, float))] + [""]
    lines += [markdown_table(("WAR %", "UAR %", "macro-F1 %", "clips"),
                             [(fmt(metrics["war"]), fmt(metrics["uar"]), fmt(metrics["macro_f1"]), metrics["clips"])]),
              "", per_class_markdown(metrics), "",
              "![confusion](confusion.png) ![confusion, row-normalised](confusion_normalized.png)", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return metrics


def ablation_table(results: dict[str, dict], out_dir: str | Path, subtitle: str = "") -> list[dict]:
    """One row per modality mode ({"a": metrics, "v": ..., "av": ...}) as ablation.csv/.md/.json/.png."""
    from fer_lib.plots import bars_figure, save_png

    out_dir = Path(out_dir)
    rows = []
    for flag in [f for f in ABLATION_ORDER if f in results] + [f for f in results if f not in ABLATION_ORDER]:
        m = results[flag]
        rows.append({"modalities": flag, "mode": MODALITY_NAMES.get(flag, flag), "war": m["war"], "uar": m["uar"],
                     "macro_f1": m["macro_f1"], "clips": m["clips"]})
    with open(out_dir / "ablation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    md = [f"# Modality ablation: {subtitle}" if subtitle else "# Modality ablation", "",
          "Same checkpoint, same clips; an absent modality is replaced by the model's learned missing token.", "",
          markdown_table(("mode", "WAR %", "UAR %", "macro-F1 %", "clips"),
                         [(r["mode"], fmt(r["war"]), fmt(r["uar"]), fmt(r["macro_f1"]), r["clips"]) for r in rows]),
          ""]
    (out_dir / "ablation.md").write_text("\n".join(md))
    write_json(out_dir / "ablation.json", {"subtitle": subtitle, "rows": rows})
    table = {r["mode"]: {k: r[k] for k in SUMMARY_METRICS} for r in rows}
    save_png(bars_figure(table, SUMMARY_METRICS, title="Modality ablation", subtitle=subtitle), out_dir / "ablation.png")
    return rows


# --------------------------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------------------------


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """The checkpoint folder for a checkpoint or run folder; EvaluationError (one line) if there is none."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise EvaluationError(f"checkpoint not found: {path}")
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    for name in ("best", "last"):
        candidate = path / "checkpoints" / name
        if (candidate / "config.json").is_file():
            return candidate
    raise EvaluationError(f"not a checkpoint: {path} (expected model.safetensors + config.json, or a run folder "
                          "with checkpoints/best or checkpoints/last)")


def run_dir_of(checkpoint_dir: Path) -> Path:
    """runs/<name>/ for runs/<name>/checkpoints/<ckpt>/; the checkpoint's parent otherwise."""
    return checkpoint_dir.parent.parent if checkpoint_dir.parent.name == "checkpoints" else checkpoint_dir.parent


def modality_tuple(flag: str) -> tuple[str, ...]:
    from fer_lib.config import MODALITY_FLAGS

    if flag not in MODALITY_FLAGS:
        raise EvaluationError(f"unknown modalities {flag!r}: use av (audio+visual), a (audio only) or v (visual only)")
    return MODALITY_FLAGS[flag]


@dataclass
class LoadedCheckpoint:
    model: object  # EmotionModel, eval mode, on the device
    config: object  # ModelConfig
    split: dict  # split.json: name, train/val/test actors, fold, manifest_hash
    path: Path  # the checkpoint folder
    trained_modalities: str  # the training run's modalities flag: av | a | v

    def __iter__(self):  # model, cfg, split, path = load_checkpoint(...)
        return iter((self.model, self.config, self.split, self.path))


def load_checkpoint(checkpoint: str | Path, device=None) -> LoadedCheckpoint:
    """The model of a checkpoint or run folder, in eval mode on `device` (default cuda when available).

    The model is built from the checkpoint's config (`build_model`), frozen pretrained towers come from
    their source, the checkpoint's trainable weights are loaded strictly.
    """
    import torch

    from fer_lib.config import ConfigError, ModelConfig, from_dict
    from fer_lib.models import CheckpointMismatchError, PretrainedLoadError, build_model
    from fer_lib.training import checkpoint as ckpt

    path = resolve_checkpoint(checkpoint)
    try:
        loaded = ckpt.load(path)
    except ckpt.CheckpointError as exc:
        raise EvaluationError(str(exc)) from None
    try:
        cfg = from_dict(ModelConfig, loaded.config["model"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise EvaluationError(f"{path / 'config.json'} has no usable model config ({exc})") from None
    try:
        model = build_model(cfg)
        model.load_trainable_state_dict(loaded.weights)
    except (CheckpointMismatchError, PretrainedLoadError, ConfigError) as exc:
        raise EvaluationError(str(exc).splitlines()[0]) from None
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device).eval()
    trained = str((loaded.config.get("train") or {}).get("modalities") or "av")
    return LoadedCheckpoint(model, cfg, loaded.split, path, trained)


def predict_modes(model, loader, modes: Sequence[str], progress: bool = True, desc: str = "evaluate") -> dict[str, Predictions]:
    """Run `model` over `loader` once, in each modality mode of `modes` ("av", "a", "v") per batch."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    flags = {flag: modality_tuple(flag) for flag in modes}
    paths, actors, labels, probs = [], [], [], {flag: [] for flag in modes}
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()
                      if isinstance(v, torch.Tensor) and k not in ("label", "actor")}
            for flag, modalities in flags.items():
                logits = model(inputs, modalities=modalities).logits
                probs[flag].append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
            paths += list(batch["path"])
            actors.append(batch["actor"].numpy())
            labels.append(batch["label"].numpy())
    actors_, labels_ = np.concatenate(actors), np.concatenate(labels)
    return {flag: Predictions.from_probs(paths, actors_, labels_, np.concatenate(p)) for flag, p in probs.items()}


def describe_split(split: dict, part: str) -> str:
    """'test actors 21-24 · fold 5/6 (HiCMAE's 4-actor folds)' and the like: what every figure is titled with."""
    name = str(split.get("name", "fixed"))
    if part == "all":
        actors = sorted({a for p in ("train", "val", "test") for a in split.get(p, [])})
        return f"all cached clips, actors {actor_ranges(actors)} (includes the training actors: not a held-out score)"
    actors = sorted(int(a) for a in split.get(part, []))
    who = f"{part} actor{'s' if len(actors) != 1 else ''} {actor_ranges(actors)}"
    if name == "fixed":
        return f"{who} · fixed actor split"
    hicmae = len(actors) == 4 and actors[0] % 4 == 1 and actors == list(range(actors[0], actors[0] + 4))
    return f"{who} · {name} of the actor k-fold" + (" (HiCMAE's folds of 4 consecutive actors)" if hicmae else "")


def read_cache(data_dir: str | Path):
    """(manifest dict, PreprocessConfig) of a preprocessing cache; EvaluationError (one line) if it is not one."""
    from fer_lib.data.index import DataError
    from fer_lib.preprocess import manifest_config, read_manifest

    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise EvaluationError(f"cache folder not found: {path}; build it with "
                              f"`python -m fer_lib.preprocess --data_dir DIR --cache_dir {path}`")
    try:
        return read_manifest(path), manifest_config(path)
    except DataError as exc:
        raise EvaluationError(str(exc)) from None


def check_inputs(preprocess_cfg, cfg, where: str) -> None:
    """EvaluationError unless the cache's clips are what the model takes (rate, window, frames, size)."""
    fields = ("sample_rate", "clip_seconds", "num_frames", "image_size")
    changed = [f"{f} {getattr(preprocess_cfg.input, f)} vs {getattr(cfg.input, f)}" for f in fields
               if getattr(preprocess_cfg.input, f) != getattr(cfg.input, f)]
    if changed:
        raise EvaluationError(f"the cache {where} was built for other model inputs than the checkpoint's "
                              f"({'; '.join(changed)}): preprocess with the checkpoint's input settings")


def evaluate(checkpoint: str | Path, data_dir: str | Path, out: Optional[str | Path] = None,
             modalities: Optional[str] = None,
             split: str = "test", ablation: bool = False, batch_size: int = 8, device=None,
             num_workers: int = 0, progress: bool = True, verbose: bool = True) -> dict:
    """Evaluate `checkpoint` on the cached clips of one part of its split (module docstring).

    Returns {"out_dir": folder written, "results": {modality flag: metrics dict}, "ablation": rows or None,
    "subtitle": the split description}. `ablation=True` evaluates "a", "v" and "av" from the same
    weights (one pass over the data) and ignores `modalities`. `modalities=None`: those the checkpoint
    was trained with (its config.json). Raises EvaluationError (one line).
    """
    from fer_lib.data.dataset import RavdessDataset, make_loader
    from fer_lib.data.index import DataError

    if modalities is not None:
        modality_tuple(modalities)
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}: use test, val or all")
    ckpt_dir = resolve_checkpoint(checkpoint)
    data_path = Path(data_dir).expanduser()
    manifest, preprocess_cfg = read_cache(data_path)  # before the (slow) model load: bad input fails fast
    loaded = load_checkpoint(ckpt_dir, device)
    model, cfg, split_dict, ckpt_dir = loaded
    check_inputs(preprocess_cfg, cfg, str(data_path))
    modalities = modalities or loaded.trained_modalities
    modality_tuple(modalities)
    modes = list(ABLATION_ORDER) if ablation else [modalities]
    trained_hash = split_dict.get("manifest_hash")
    if trained_hash and trained_hash != manifest.get("hash") and verbose:
        print(f"warning: the checkpoint was trained on a cache with hash {trained_hash}, this cache has "
              f"{manifest.get('hash')} (other preprocessing parameters)", file=sys.stderr)
    actors = None if split == "all" else split_dict.get(split)
    if split != "all" and not actors:
        raise EvaluationError(f"the checkpoint's split.json has no {split} actors")
    try:
        dataset = RavdessDataset(data_path, actors, augment=False)
    except DataError as exc:
        raise EvaluationError(str(exc)) from None
    loader = make_loader(dataset, batch_size=batch_size, train=False, num_workers=num_workers)
    subtitle = describe_split(split_dict, split)
    predictions = predict_modes(model, loader, modes, progress=progress)

    out_root = Path(out).expanduser() if out else run_dir_of(ckpt_dir) / "eval"
    folder = new_dir(out_root, f"{ckpt_dir.name}-{split}-{'ablation' if ablation else modalities}")
    results = {}
    for flag in modes:
        info = {"checkpoint": str(ckpt_dir), "split_name": str(split_dict.get("name", "")), "part": split,
                "actors": sorted(set(int(a) for a in predictions[flag].actors)), "modalities": flag,
                "modalities_name": MODALITY_NAMES[flag], "cache_dir": str(data_path),
                "cache_hash": manifest.get("hash"), "preset": cfg.preset}
        results[flag] = report_from_predictions(predictions[flag], folder / flag if ablation else folder, subtitle, info)
    rows = ablation_table(results, folder, subtitle) if ablation else None
    if verbose:
        print(f"evaluated {ckpt_dir} on {subtitle}: {len(dataset)} clips")
        print(markdown_table(("mode", "WAR %", "UAR %", "macro-F1 %"),
                             [(MODALITY_NAMES[f], fmt(m["war"]), fmt(m["uar"]), fmt(m["macro_f1"])) for f, m in results.items()]))
        print(f"results: {folder}")
    return {"out_dir": str(folder), "results": results, "ablation": rows, "subtitle": subtitle}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_lib.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (runs/<name>/checkpoints/best) or run folder")
    parser.add_argument("--data_dir", required=True, help="the preprocessing cache (cache/preprocessed)")
    parser.add_argument("--out", default=None, help="parent folder of the results (default runs/<name>/eval)")
    parser.add_argument("--modalities", default=None,
                        help="av, a (audio only) or v (visual only); default: those the checkpoint was trained with")
    parser.add_argument("--split", default="test", help="test (default), val or all")
    parser.add_argument("--ablation", action="store_true", help="audio-only, visual-only and both, one table")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        evaluate(args.checkpoint, args.data_dir, args.out, modalities=args.modalities, split=args.split,
                 ablation=args.ablation, batch_size=args.batch_size, device=args.device,
                 num_workers=args.num_workers, progress=not args.no_progress)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
