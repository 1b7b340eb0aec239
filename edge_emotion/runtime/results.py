"""Result dataclasses, each with ``to_dict()`` for JSON.

One vocabulary: an :class:`Emotion` (what ``classify()`` returns for a crop) and a :class:`Face`
(what ``detect()`` returns) both name their answer ``emotion``, ``confidence`` and
``probabilities``, and both round them the same way in ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROB_DECIMALS = 4
"""Decimals of confidences and probabilities in every ``to_dict()``."""


def _emotion_fields(emotion: str, confidence: float, probabilities: dict[str, float]) -> dict[str, Any]:
    return {"emotion": emotion, "confidence": round(confidence, PROB_DECIMALS),
            "probabilities": {k: round(v, PROB_DECIMALS) for k, v in probabilities.items()}}


@dataclass
class Emotion:
    """The classifier's answer for one face crop: the top ``emotion``, its probability
    (``confidence``) and every label's probability."""

    emotion: str
    confidence: float
    probabilities: dict[str, float]

    @property
    def label(self) -> str:
        """The same as :attr:`emotion` (the name used before 0.1.0's one vocabulary)."""
        return self.emotion

    def to_dict(self) -> dict[str, Any]:
        return _emotion_fields(self.emotion, self.confidence, self.probabilities)


@dataclass
class Face:
    """One face in a frame.

    ``box`` is ``(x, y, w, h)`` in integer frame pixels, clipped to the frame; ``score`` is the
    face detector's confidence; ``emotion``/``confidence`` are the top label and its probability;
    ``probabilities`` maps every label to its probability (they sum to 1 for single-label models).
    """

    box: tuple[int, int, int, int]
    score: float
    emotion: str
    confidence: float
    probabilities: dict[str, float]
    landmarks: list[tuple[float, float]] | None = None
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"box": list(self.box), "score": round(self.score, PROB_DECIMALS),
                             **_emotion_fields(self.emotion, self.confidence, self.probabilities)}
        if self.landmarks is not None:
            d["landmarks"] = [[round(x, 1), round(y, 1)] for x, y in self.landmarks]
        if self.track_id is not None:
            d["track_id"] = self.track_id
        return d


@dataclass
class FrameResult:
    """Faces in one frame of one source of a stream.

    ``source`` is the name of the source the frame came from (the name, path, URL or camera index
    given; URL passwords masked); ``index`` counts that source's frames from 0 (live sources: gaps
    are frames dropped to stay current, counted in ``dropped``); ``timestamp`` is seconds since the
    source started; ``latency_ms`` is detection + classification time of the tick that produced
    it; ``fps`` is this source's smoothed result rate; ``image`` is the frame (not in ``to_dict()``).
    """

    index: int
    timestamp: float
    faces: list[Face]
    latency_ms: float
    fps: float
    dropped: int = 0
    source: str = ""
    reconnects: int = 0
    image: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "frame": self.index, "timestamp": round(self.timestamp, 4),
                "latency_ms": round(self.latency_ms, 2), "fps": round(self.fps, 2), "dropped": self.dropped,
                "reconnects": self.reconnects, "faces": [f.to_dict() for f in self.faces]}
