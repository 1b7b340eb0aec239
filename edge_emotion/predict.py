"""One prediction loop for every model kind: batches, horizontal-flip test-time augmentation, progress.

Evaluation, training reports, the final-weight selection and export validation all score
models on uint8 dataset images through :func:`predict_images`; what differs is only the
function that turns a batch of images into probabilities:

- :func:`keras_predictor`: a Keras model, images through :meth:`Preprocessing.tf_batch`
  (needs TensorFlow; training and export);
- :func:`classifier_predictor` / :func:`file_predictor`: a runtime :class:`EmotionClassifier`
  (or any model file through one), images through :meth:`Preprocessing.batch` (no TensorFlow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .preprocessing import Preprocessing

__all__ = ["Predictor", "predict_images", "predict_with_flip", "keras_predictor", "classifier_predictor", "file_predictor"]

Predictor = Callable[[np.ndarray], np.ndarray]
"""uint8 images (N, H, W, C) from a dataset (RGB or gray) -> probabilities (N, K)."""


def predict_images(predict: Predictor, images: np.ndarray, batch: int = 256, flip: bool = False,
                   progress: str | None = None) -> np.ndarray:
    """Probabilities for ``images`` (N, H, W[, C]), ``batch`` at a time; ``flip`` mirrors each image first.

    ``progress``: a label for a progress bar on stderr (tqdm, when installed), None for none.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W[, C]), got shape {images.shape}")
    starts = range(0, len(images), batch)
    if progress:
        try:
            from tqdm import tqdm

            starts = tqdm(starts, desc=progress, unit="batch", leave=False)
        except ImportError:
            pass
    out = []
    for i in starts:
        chunk = images[i : i + batch]
        if flip:
            chunk = chunk[:, :, ::-1]
        out.append(np.asarray(predict(np.ascontiguousarray(chunk)), np.float32))
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out)


def predict_with_flip(predict: Predictor, images: np.ndarray, batch: int = 256,
                      progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(plain, mirrored) probabilities; their mean is the flip-TTA prediction."""
    return (predict_images(predict, images, batch, progress=progress),
            predict_images(predict, images, batch, flip=True, progress=progress and f"{progress} (flipped)"))


def keras_predictor(model: Any, preprocessing: Preprocessing | None = None, training: bool = False) -> Predictor:
    """A Keras model as a :data:`Predictor` (inference mode unless ``training``: BatchNorm re-estimation)."""
    prep = preprocessing or Preprocessing.for_input_shape(tuple(model.input_shape[1:]))

    def predict(chunk: np.ndarray) -> np.ndarray:
        return np.asarray(model(prep.tf_batch(chunk), training=training))

    return predict


def classifier_predictor(clf: Any, order: str = "rgb") -> Predictor:
    """A loaded runtime :class:`EmotionClassifier` as a :data:`Predictor`; ``order``: channel order of
    3-channel images (``rgb`` for datasets, ``bgr`` for crops cut from OpenCV frames)."""

    def predict(chunk: np.ndarray) -> np.ndarray:
        return clf.predict(clf.preprocessing.batch(chunk, order=order))

    return predict


def file_predictor(model_path: str | Path, backend: str = "auto", threads: int | None = None) -> tuple[Predictor, list[str]]:
    """Any model file (.keras/.tflite/.onnx/.engine) through the runtime, and its labels."""
    from .runtime.classifier import EmotionClassifier

    clf = EmotionClassifier(model_path, backend=backend, threads=threads)
    return classifier_predictor(clf), clf.labels
