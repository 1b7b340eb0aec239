"""edge-emotion: facial emotion recognition from training to the edge.

    >>> from edge_emotion import EmotionDetector
    >>> faces = EmotionDetector().detect(frame)   # frame: BGR uint8, the OpenCV convention

Importing this package never imports TensorFlow: training and export live in
``edge_emotion.train`` and ``edge_emotion.export`` (the ``train`` extra).
"""

from __future__ import annotations

import logging

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["EmotionDetector", "Face", "Emotion", "__version__"]


def __getattr__(name: str):  # lazy: `import edge_emotion` stays cheap
    if name in ("EmotionDetector", "Face", "Emotion"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'edge_emotion' has no attribute {name!r}")
