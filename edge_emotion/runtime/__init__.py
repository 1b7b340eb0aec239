"""The light runtime: no TensorFlow. Face detection, cropping, batched classification on LiteRT,
ONNX Runtime or TensorRT, streams and annotation."""

from .detector import EmotionDetector
from .results import Emotion, Face

__all__ = ["EmotionDetector", "Emotion", "Face"]
