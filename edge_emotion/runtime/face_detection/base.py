"""Face detector interface: ``detect(frame) -> list[FaceBox]``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..crop import square_box

# Shared by the network detectors (YuNet, BlazeFace):
HIGH_RES = ("auto", "on", "off")
# high_res="auto" works harder for small faces in frames whose long side is at least this: YuNet runs them at their
# own resolution, BlazeFace adds its tile pyramid (measured on pascal_voc_faces mosaics, benchmarks/face_detection.py:
# at 1,000 px the plain passes find 19 (YuNet, 224 px) and 10 (BlazeFace, 192 px) of 43 faces; at 500 px they
# already find 43 and 40)
HIGH_RES_MIN_SIDE = 1000
# tracker-guided detection (detect_near): each tracked box's region adds this many box sides on every side and
# runs at NEAR_INPUT x NEAR_INPUT network pixels (a face a third of the region spans 32 of them)
NEAR_CONTEXT = 1.0
NEAR_INPUT = 96


@dataclass
class FaceBox:
    """A detected face in frame pixels (floats; the caller rounds and clips)."""

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: np.ndarray | None = None
    """(K, 2) landmark points in frame pixels, if the detector gives them. BlazeFace: right eye,
    left eye, nose tip, mouth centre, right ear tragion, left ear tragion (the subject's right/left)."""


class FaceDetector(ABC):
    name = "base"

    @abstractmethod
    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        """Faces in a BGR uint8 frame, best first."""


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes ``a`` (N, 4) and ``b`` (M, 4), both x, y, w, h -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def near_regions(frame_shape: tuple[int, ...], boxes, context: float) -> list[tuple[int, int, int, int]]:
    """Tracker-guided detection's search regions: each box's square, ``context`` box sides added on every side,
    clipped to the frame, as (x0, y0, x1, y1); regions under 2 pixels a side are left out."""
    h, w = frame_shape[:2]
    out = []
    for b in boxes:
        cx, cy, side = square_box(b.x, b.y, b.w, b.h, context)
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        x1, y1 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            out.append((x0, y0, x1, y1))
    return out
