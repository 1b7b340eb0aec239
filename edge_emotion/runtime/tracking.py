"""A small IoU tracker: stable face IDs across frames, and per-track probability smoothing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .face_detection.base import iou_xywh
from .results import Face


@dataclass
class Track:
    track_id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray | None = None
    misses: int = 0
    hits: int = 0
    extra: dict = field(default_factory=dict)


class IoUTracker:
    """Greedy IoU matching of this frame's faces to live tracks.

    A track survives ``max_age`` frames without a match. With ``smoothing`` (0..1, the EMA
    weight of the newest frame; ``None`` = off) each track's probabilities are an
    exponential moving average, and the face's emotion/confidence follow the smoothed values.
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 15, smoothing: float | None = None) -> None:
        if smoothing is not None and not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next = 1

    def update(self, faces: list[Face], labels: list[str]) -> list[Face]:
        boxes = np.array([f.box for f in faces], float).reshape(-1, 4)
        tboxes = np.array([t.box for t in self.tracks], float).reshape(-1, 4)
        ious = iou_xywh(boxes, tboxes) if len(boxes) and len(tboxes) else np.zeros((len(boxes), len(tboxes)))
        assigned: dict[int, int] = {}
        used = set()
        for fi, ti in sorted(np.ndindex(*ious.shape), key=lambda ij: -ious[ij]) if ious.size else []:
            if ious[fi, ti] < self.iou_threshold or fi in assigned or ti in used:
                continue
            assigned[fi] = ti
            used.add(ti)
        for ti, t in enumerate(self.tracks):
            if ti not in used:
                t.misses += 1
        for fi, f in enumerate(faces):
            if fi in assigned:
                t = self.tracks[assigned[fi]]
                t.misses = 0
            else:
                t = Track(self._next, f.box)
                self._next += 1
                self.tracks.append(t)
            t.box, t.hits = f.box, t.hits + 1
            p = np.array([f.probabilities[k] for k in labels], np.float32)
            if self.smoothing is not None and t.probs is not None:
                p = self.smoothing * p + (1 - self.smoothing) * t.probs
            t.probs = p
            f.track_id = t.track_id
            if self.smoothing is not None:
                k = int(np.argmax(p))
                f.probabilities = {lab: float(v) for lab, v in zip(labels, p)}
                f.emotion, f.confidence = labels[k], float(p[k])
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        return faces
