"""Keras backend: runs a ``.keras`` model directly. Needs the ``train`` extra (TensorFlow);
used for evaluation and as the benchmark's reference row, never by the light runtime."""

from __future__ import annotations

import numpy as np

from ...errors import BackendUnavailableError, ModelError
from .base import Backend, check_file


class KerasBackend(Backend):
    name = "keras"

    def __init__(self, path, model) -> None:
        self.path = path
        self._m = model

    @classmethod
    def load(cls, path, threads=None, providers=None):
        path = check_file(path, "Keras (.keras zip)")
        try:
            import keras
        except ImportError:
            raise BackendUnavailableError("running .keras models needs the training extra: pip install 'edge-emotion[train]'") from None
        try:
            model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{path}: Keras cannot load this model: {exc}") from None
        from ...train.models import as_float32, flip_averaged
        from ..zoo import published_with_flip_average

        # float32 compute, as every export of it runs: a checkpoint saved by a mixed-bfloat16 run (best.keras)
        # would otherwise be scored in bfloat16, a few images away from what finalize and the exports measure
        model = as_float32(model)
        if published_with_flip_average(path):  # as its artifacts do (the bundler's --flip-average)
            model = flip_averaged(model)
        return cls(path, model)

    @property
    def input_shape(self):
        return tuple(self._m.input_shape)

    def version(self) -> str:
        import keras
        import tensorflow as tf

        return f"keras {keras.__version__} / tensorflow {tf.__version__}"

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = self._check_batch(batch)
        return [np.asarray(self._m(batch, training=False), dtype=np.float32)]
