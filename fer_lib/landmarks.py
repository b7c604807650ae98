"""MTCNN's five facial landmarks: their order, their mirror pairs, and where they sit on a typical face.

Order (MTCNN's): left eye, right eye, nose, mouth left, mouth right ("left" = image left).

One template places the landmarks wherever detection gives none:
- in a face box (`canonical_in_box`): a frame whose face MTCNN lost keeps the track's box
  (`data/faces.py`);
- in the preprocessed square crop (`canonical_in_crop`): a batch without landmarks, or with
  non-finite ones from a failed detection (`models/roi.py`).
"""

from __future__ import annotations

import numpy as np

FLIP_LANDMARKS = (1, 0, 2, 4, 3)  # horizontal flip: left eye <-> right eye, mouth left <-> mouth right

# Typical MTCNN landmark positions inside an MTCNN face box (x, y as fractions of width, height).
CANONICAL_IN_BOX = np.array([[0.30, 0.38], [0.70, 0.38], [0.50, 0.58], [0.33, 0.76], [0.67, 0.76]], np.float32)
# MTCNN boxes are taller than wide: width / height of a frontal face (the astronaut's: 87 / 110).
TYPICAL_BOX_ASPECT = 0.8


def canonical_in_box(box: np.ndarray) -> np.ndarray:
    """[5, 2] canonical landmark positions in pixels inside `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    return (np.array([x0, y0]) + CANONICAL_IN_BOX * np.array([x1 - x0, y1 - y0])).astype(np.float32)


def canonical_in_crop(margin: float) -> np.ndarray:
    """[5, 2] canonical landmark positions as fractions of the side of a face crop.

    The crop is the square of side max(w, h) * (1 + 2 * margin) centred on a typical box (see
    `data.faces.crop_box`), whose height is its longer side.
    """
    box_fraction_of_crop = np.array([TYPICAL_BOX_ASPECT, 1.0], np.float32) / (1 + 2 * margin)
    return (0.5 + (CANONICAL_IN_BOX - 0.5) * box_fraction_of_crop).astype(np.float32)
