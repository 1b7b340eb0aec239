"""OpenCV Haar cascade face detector: the fallback when BlazeFace's weights are not installed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ...errors import BackendUnavailableError
from .base import FaceBox, FaceDetector


class HaarFaceDetector(FaceDetector):
    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 20,
                 score_threshold: float = 0.0, max_faces: int = 64) -> None:
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise BackendUnavailableError("this OpenCV build has no Haar cascades (opencv-python-headless>=5 dropped them); "
                                          "install 'opencv-python-headless<5' or the BlazeFace weights")
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._clf = cv2.CascadeClassifier(str(path))
        if self._clf.empty():
            raise BackendUnavailableError(f"cannot load Haar cascade {path}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.score_threshold, self.max_faces = score_threshold, max_faces

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        rects, _, weights = self._clf.detectMultiScale3(gray, self.scale_factor, self.min_neighbors,
                                                        minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        faces = [FaceBox(float(x), float(y), float(w), float(h), float(1 / (1 + np.exp(-wt))))
                 for (x, y, w, h), wt in zip(rects, np.ravel(weights))]
        faces = [f for f in faces if f.score >= self.score_threshold]
        return sorted(faces, key=lambda f: -f.score)[: self.max_faces]
