"""Draw faces, emotions, track IDs and timing on a frame."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .results import Face

# BGR colour per emotion; unknown labels get a stable colour from their name
COLORS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 200, 240),
    "sad": (200, 120, 40), "surprise": (0, 140, 255), "neutral": (200, 200, 200), "contempt": (120, 120, 60),
}


def _color(label: str) -> tuple[int, int, int]:
    if label in COLORS:
        return COLORS[label]
    h = abs(hash(label)) % 180
    c = cv2.cvtColor(np.uint8([[[h, 200, 230]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(c[0]), int(c[1]), int(c[2])


def annotate(frame: np.ndarray, faces: Sequence[Face], fps: float | None = None, latency_ms: float | None = None,
             copy: bool = True) -> np.ndarray:
    """Return ``frame`` with a box, emotion and confidence (and track ID) per face, plus FPS/latency if given."""
    img = frame.copy() if copy else frame
    scale = max(0.4, min(img.shape[:2]) / 700)
    thick = max(1, int(round(2 * scale)))
    for f in faces:
        x, y, w, h = f.box
        col = _color(f.emotion)
        cv2.rectangle(img, (x, y), (x + w, y + h), col, thick)
        text = f"{f.emotion} {f.confidence:.0%}"
        if f.track_id is not None:
            text = f"#{f.track_id} " + text
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thick)
        ty = y - 4 if y - th - base - 4 > 0 else y + h + th + 4
        cv2.rectangle(img, (x, ty - th - base), (x + tw + 4, ty + base), col, -1)
        cv2.putText(img, text, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), thick, cv2.LINE_AA)
    if fps is not None or latency_ms is not None:
        parts = []
        if fps is not None:
            parts.append(f"{fps:.1f} FPS")
        if latency_ms is not None:
            parts.append(f"{latency_ms:.1f} ms")
        cv2.putText(img, "  ".join(parts), (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 255, 0),
                    thick, cv2.LINE_AA)
    return img
