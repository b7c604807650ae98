"""Classification metrics used everywhere a number is reported: training, evaluation, cross-validation.

    WAR       weighted average recall = plain accuracy (every clip counts once)
    UAR       unweighted average recall = mean of the per-class recalls (balanced accuracy), the
              figure the RAVDESS literature reports beside WAR because neutral has half the clips
    macro_f1  mean of the per-class F1 scores

`detailed_metrics` adds the per-class precision / recall / F1 / support table and the confusion matrix
(rows true class, columns predicted class, all 8 classes). All of it comes from scikit-learn so that
it means exactly what the literature means. Classes
absent from `labels` are left out of UAR (scikit-learn's convention); macro-F1 is taken over the
classes present in either the labels or the predictions, so a small validation set that lacks a
class is not punished for it and a predicted class that does not exist there still counts.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support

from fer_lib import EMOTIONS

SUMMARY_METRICS = ("war", "uar", "macro_f1")
METRIC_NAMES = {"war": "WAR", "uar": "UAR", "macro_f1": "macro-F1"}


def classification_metrics(labels, predictions) -> dict[str, float]:
    """{"war", "uar", "macro_f1"} of integer class `predictions` against `labels` (same length)."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be equal-length 1-D arrays")
    if labels.size == 0:
        raise ValueError("cannot compute metrics on zero clips")
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected on small sets, and handled as documented above.
        warnings.simplefilter("ignore", UserWarning)
        return {
            "war": float(accuracy_score(labels, predictions)),
            "uar": float(balanced_accuracy_score(labels, predictions)),
            "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        }


def confusion(labels, predictions) -> np.ndarray:
    """int64 [C, C]: rows true class, columns predicted class, over all 8 classes."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
    return confusion_matrix(labels, predictions, labels=list(range(len(EMOTIONS)))).astype(np.int64)


def detailed_metrics(labels, predictions) -> dict:
    """`classification_metrics` plus "clips", "per_class" (precision, recall, f1, support per emotion),
    "confusion" (nested lists) and "classes".

    A class without clips in the set has recall 0 and support 0 in the per-class table and is left
    out of UAR (scikit-learn's convention, see the module docstring).
    """
    summary = classification_metrics(labels, predictions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, support = precision_recall_fscore_support(
            labels, predictions, labels=list(range(len(EMOTIONS))), zero_division=0)
    per_class = {
        name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]), "support": int(support[k])}
        for k, name in enumerate(EMOTIONS)
    }
    return {**summary, "clips": len(labels), "per_class": per_class,
            "confusion": confusion(labels, predictions).tolist(), "classes": list(EMOTIONS)}
