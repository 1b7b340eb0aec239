"""The emotion classifier: a model artifact + its metadata on one backend, batched."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..metadata import ModelMetadata, read_metadata
from ..preprocessing import Preprocessing
from .backends import Backend, load_backend
from .results import Emotion

log = logging.getLogger(__name__)


class EmotionClassifier:
    """Classifies face crops. Everything about the input comes from the artifact's own metadata."""

    def __init__(self, model_path: str | Path, backend: str = "auto", threads: int | None = None,
                 providers: list | None = None, metadata: ModelMetadata | None = None) -> None:
        self.path = Path(model_path)
        self.meta = metadata or read_metadata(self.path)
        self.backend: Backend = load_backend(self.path, backend, threads=threads, providers=providers)
        want = tuple(self.meta.input_shape)
        got = tuple(self.backend.input_shape[1:])
        if got != want:
            raise ModelError(f"{self.path}: the model takes inputs of shape {got} but its metadata says {want}; "
                             "the metadata belongs to another model")
        self.labels = list(self.meta.labels)
        self.preprocessing: Preprocessing = self.meta.preprocessing
        self._checked_outputs = False

    def close(self) -> None:
        """Release the backend's native resources (GPU buffers on TensorRT); idempotent."""
        self.backend.close()

    def preprocess(self, crops: list[np.ndarray]) -> np.ndarray:
        """BGR uint8 crops (any size) -> normalised float32 NHWC batch at the model's input size
        (:meth:`Preprocessing.batch` with the model's own metadata)."""
        return self.preprocessing.batch(crops, order="bgr")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for a preprocessed batch, in ONE backend call."""
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        probs = self.backend.infer(batch)[0].reshape(len(batch), -1)
        if not self._checked_outputs:
            if probs.shape[1] != len(self.labels):
                raise ModelError(f"{self.path}: the model outputs {probs.shape[1]} classes but its metadata names "
                                 f"{len(self.labels)} labels ({', '.join(self.labels)})")
            self._checked_outputs = True
        if not self.meta.multi_label:
            # int8 outputs are quantised: renormalise so probabilities sum to exactly 1
            probs = np.clip(probs, 0, None)
            s = probs.sum(axis=1, keepdims=True)
            probs = np.where(s > 0, probs / np.where(s > 0, s, 1), 1.0 / len(self.labels))
        return probs.astype(np.float32)

    def to_emotions(self, probs: np.ndarray) -> list[Emotion]:
        out = []
        for p in probs:
            k = int(np.argmax(p))
            out.append(Emotion(self.labels[k], float(p[k]), {lab: float(v) for lab, v in zip(self.labels, p)}))
        return out
