"""Face crops for the classifier: margin, square box, optional eye alignment, resize per the model's metadata.

The parameters come from :class:`edge_emotion.preprocessing.Preprocessing` (the model's
metadata); :meth:`Preprocessing.crop` is the call the pipeline makes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MAX_AREA_FACTOR = 12
"""Faces up to 12x the crop's side (576 px for a 48-px model) are area-averaged exactly; larger ones
are warped down to 12x first (the residual aliasing is then averaged over 12x12 pixels)."""


def square_box(x: float, y: float, w: float, h: float, margin: float, shift_y: float = 0.0) -> tuple[float, float, float]:
    """Centre and side of the square that holds the box enlarged by ``margin`` on each side,
    its centre moved by ``shift_y`` box heights (negative: up)."""
    side = max(w, h) * (1 + 2 * margin)
    return x + w / 2, y + h / 2 + shift_y * h, side


def crop_face(frame: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int], margin: float = 0.15,
              landmarks: np.ndarray | None = None, align: bool = False, shift_y: float = 0.0,
              antialias: bool = False) -> np.ndarray:
    """Cut a square face crop out of a BGR frame and resize it to ``size`` (h, w).

    Parts of the square outside the frame are filled by replicating the border, so faces
    at the frame edge keep their scale. With ``align`` and landmarks (eyes first), the crop
    is rotated so the eyes are level. With ``antialias`` (models whose metadata says
    ``resize="area"``), a face larger than ``size`` is reduced by averaging pixel areas
    instead of being sampled at a few points per output pixel (a bilinear warp alone
    aliases: on the sample photo, a 300-px face cut to 48 px differs from its area average
    by 6.7 grey levels per pixel, against 0.1 with antialiasing). It is not the default:
    measured with the bundled model (``benchmarks/crop_resampling.py``), it made predictions
    no steadier on real faces and cost 0.4-0.9 points on enlarged FER-2013 faces.
    """
    cx, cy, side = square_box(*box, margin, shift_y)
    out_h, out_w = size
    angle = 0.0
    if align and landmarks is not None and len(landmarks) >= 2:
        (rx, ry), (lx, ly) = landmarks[0], landmarks[1]
        angle = float(np.degrees(np.arctan2(ly - ry, lx - rx)))
        # subject's right eye is on the image's left: the vector right->left eye points along +x
    s = out_w / side
    # with antialias, a face more than 1.5x the crop is warped to k times the crop's size (k the smallest whole
    # factor that makes the warp enlarge, at most MAX_AREA_FACTOR) and then area-averaged by exactly k;
    # below 1.5x, bilinear samples are at most 1.5 px apart and averaging only blurs (measured on the sample photo)
    k = min(math.ceil(1 / s - 1e-9), MAX_AREA_FACTOR) if antialias and s < 1 / 1.5 else 1
    sk = s * k
    # frame -> crop, pixel centres to pixel centres: i + 0.5 = sk * (j + 0.5 - left edge of the square)
    m = cv2.getRotationMatrix2D((cx, cy), angle, sk)
    m[0, 2] += out_w * k / 2 - cx + 0.5 * (sk - 1)
    m[1, 2] += out_h * k / 2 - cy + 0.5 * (sk - 1)
    out = cv2.warpAffine(frame, m, (out_w * k, out_h * k), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out if k == 1 else cv2.resize(out, (out_w, out_h), interpolation=cv2.INTER_AREA)
