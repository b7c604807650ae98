"""Classification metrics used everywhere a number is reported: training, evaluation, cross-validation.

    WAR       weighted average recall = plain accuracy (every clip counts once)
    UAR       unweighted average recall = mean of the per-class recalls (balanced accuracy), the
              figure the RAVDESS literature reports beside WAR because neutral has half the clips
    macro_f1  mean of the per-class F1 scores

All three come from scikit-learn so that they mean exactly what the literature means. Classes
absent from `labels` are left out of UAR (scikit-learn's convention); macro-F1 is taken over the
classes present in either the labels or the predictions, so a small validation set that lacks a
class is not punished for it and a predicted class that does not exist there still counts.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score


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
