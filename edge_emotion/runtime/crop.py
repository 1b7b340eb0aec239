"""Face crops for the classifier: margin, square box, optional eye alignment, resize and colour per the model's metadata."""

from __future__ import annotations

import cv2
import numpy as np


def square_box(x: float, y: float, w: float, h: float, margin: float, shift_y: float = 0.0) -> tuple[float, float, float]:
    """Centre and side of the square that holds the box enlarged by ``margin`` on each side,
    its centre moved by ``shift_y`` box heights (negative: up)."""
    side = max(w, h) * (1 + 2 * margin)
    return x + w / 2, y + h / 2 + shift_y * h, side


def crop_face(frame: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int], margin: float = 0.15,
              landmarks: np.ndarray | None = None, align: bool = False, shift_y: float = 0.0) -> np.ndarray:
    """Cut a square face crop out of a BGR frame and resize it to ``size`` (h, w).

    Parts of the square outside the frame are filled by replicating the border, so faces
    at the frame edge keep their scale. With ``align`` and landmarks (eyes first), the crop
    is rotated so the eyes are level.
    """
    cx, cy, side = square_box(*box, margin, shift_y)
    out_h, out_w = size
    angle = 0.0
    if align and landmarks is not None and len(landmarks) >= 2:
        (rx, ry), (lx, ly) = landmarks[0], landmarks[1]
        angle = float(np.degrees(np.arctan2(ly - ry, lx - rx)))
        # subject's right eye is on the image's left: the vector right->left eye points along +x
    s = out_w / side
    m = cv2.getRotationMatrix2D((cx, cy), angle, s)
    m[0, 2] += out_w / 2 - cx
    m[1, 2] += out_h / 2 - cy
    return cv2.warpAffine(frame, m, (out_w, out_h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
