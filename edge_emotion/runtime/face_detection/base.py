"""Face detector interface: ``detect(frame) -> list[FaceBox]``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


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
