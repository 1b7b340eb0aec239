"""Result dataclasses, each with ``to_dict()`` for JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Emotion:
    """The classifier's answer for one face crop."""

    label: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"emotion": self.label, "confidence": round(self.confidence, 6),
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


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
        d: dict[str, Any] = {"box": list(self.box), "score": round(self.score, 4), "emotion": self.emotion,
                             "confidence": round(self.confidence, 4),
                             "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}
        if self.landmarks is not None:
            d["landmarks"] = [[round(x, 1), round(y, 1)] for x, y in self.landmarks]
        if self.track_id is not None:
            d["track_id"] = self.track_id
        return d
