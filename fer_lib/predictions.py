"""Per-clip predictions: the table every reported number and figure is computed from, and its CSV.

    predictions.csv   path, actor, true, pred, true_name, pred_name, p_neutral ... p_surprised

one row per clip (softmax probabilities; `pred` is their argmax). Evaluation writes it, and its
metrics, reports, the confusion explorer and cross-validation's summaries are all recomputed from it,
so any of them can be checked against the CSV alone.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fer_lib import EMOTIONS
from fer_lib.errors import FerError
from fer_lib.fileio import atomic_file
from fer_lib.metrics import confusion, detailed_metrics

PROB_FIELDS = tuple(f"p_{e}" for e in EMOTIONS)
PREDICTION_FIELDS = ("path", "actor", "true", "pred", "true_name", "pred_name") + PROB_FIELDS
CSV_NAME = "predictions.csv"


class PredictionsFileError(FerError):
    """A predictions.csv is missing or is not one."""


class NonFiniteOutputError(FerError):
    """The model's outputs hold nan or inf: nothing is reported from them."""


def check_finite(probs: np.ndarray, what: str, checkpoint="the checkpoint") -> np.ndarray:
    """`probs` when every value is finite; NonFiniteOutputError naming how many of `what` are not. A model
    with nan/inf weights (a diverged run) predicts nan for everything, and argmax would call that class 0."""
    probs = np.asarray(probs)
    bad = ~np.isfinite(probs.reshape(len(probs), -1)).all(axis=1)
    if bad.any():
        raise NonFiniteOutputError(f"the model's outputs are nan or inf for {int(bad.sum())} of {len(probs)} {what}: "
                                   f"{checkpoint} is broken (a diverged run?); use an earlier checkpoint, or train "
                                   "again with a lower --lr")
    return probs


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
        """From a model's probabilities [N, C]; NonFiniteOutputError when any is nan or inf."""
        probs = check_finite(np.asarray(probs, np.float64).reshape(len(paths), len(EMOTIONS)), "clips")
        return cls(list(map(str, paths)), np.asarray(actors, np.int64).reshape(-1),
                   np.asarray(labels, np.int64).reshape(-1), probs.argmax(axis=1).astype(np.int64), probs)

    @classmethod
    def concatenate(cls, parts: Sequence["Predictions"]) -> "Predictions":
        return cls([path for p in parts for path in p.paths], np.concatenate([p.actors for p in parts]),
                   np.concatenate([p.labels for p in parts]), np.concatenate([p.preds for p in parts]),
                   np.concatenate([p.probs for p in parts]))

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

    def confusion(self) -> np.ndarray:
        """int64 [C, C]: rows true class, columns predicted class."""
        return confusion(self.labels, self.preds)

    def metrics(self) -> dict:
        """WAR, UAR, macro-F1, per-class table and confusion matrix (`fer_lib.metrics.detailed_metrics`)."""
        if len(self) == 0:
            raise PredictionsFileError("no predictions to compute metrics from")
        return detailed_metrics(self.labels, self.preds)

    def write_csv(self, path: str | Path) -> Path:
        with atomic_file(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(PREDICTION_FIELDS)
            for i in range(len(self)):
                writer.writerow([self.paths[i], int(self.actors[i]), int(self.labels[i]), int(self.preds[i]),
                                 EMOTIONS[self.labels[i]], EMOTIONS[self.preds[i]],
                                 *(f"{p:.6f}" for p in self.probs[i])])
        return Path(path)

    @classmethod
    def read_csv(cls, path: str | Path) -> "Predictions":
        path = Path(path)
        if not path.is_file():
            raise PredictionsFileError(f"predictions file not found: {path}")
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [f for f in PREDICTION_FIELDS if f not in (reader.fieldnames or [])]
            if missing:
                raise PredictionsFileError(f"{path} is not a predictions.csv (missing columns {', '.join(missing)})")
            rows = []
            for row in reader:
                try:
                    rows.append(_parse_row(row))
                except ValueError as exc:
                    raise PredictionsFileError(f"{path} is damaged: line {reader.line_num}: {exc}; evaluate again to "
                                               "write it anew") from None
        return cls(
            paths=[r[0] for r in rows],
            actors=np.array([r[1] for r in rows], np.int64),
            labels=np.array([r[2] for r in rows], np.int64),
            preds=np.array([r[3] for r in rows], np.int64),
            probs=np.array([r[4] for r in rows], np.float64).reshape(-1, len(EMOTIONS)),
        )


def _parse_row(row: dict) -> tuple[str, int, int, int, list[float]]:
    """(path, actor, true, pred, probabilities) of one CSV row; ValueError saying what is wrong with it."""
    if None in row or None in row.values():
        raise ValueError(f"not the {len(row) - (None in row)} fields of the header (a file cut short?)")
    actor, true, pred = (int(row[name]) for name in ("actor", "true", "pred"))
    probs = [float(row[name]) for name in PROB_FIELDS]
    if not (0 <= true < len(EMOTIONS) and 0 <= pred < len(EMOTIONS)):
        raise ValueError(f"a class outside 0..{len(EMOTIONS) - 1} (true {true}, pred {pred})")
    if not all(0.0 <= p <= 1.0 for p in probs):
        raise ValueError("a probability outside [0, 1]")
    return row["path"], actor, true, pred, probs


def load_predictions(source) -> Predictions:
    """A Predictions from a Predictions, a predictions.csv, or an evaluation folder holding one."""
    if isinstance(source, Predictions):
        return source
    path = Path(source)
    if path.is_dir():
        path = path / CSV_NAME
    return Predictions.read_csv(path)


def metrics_from_predictions(source) -> dict:
    """`Predictions.metrics()` of a Predictions, a predictions.csv or its folder."""
    return load_predictions(source).metrics()
