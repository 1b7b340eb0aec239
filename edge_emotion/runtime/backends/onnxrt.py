"""ONNX Runtime backend: CPU, CUDA or the TensorRT execution provider, as the caller asks."""

from __future__ import annotations

import logging
import os

import numpy as np

from ...errors import BackendUnavailableError, ModelError
from .base import Backend, check_file

log = logging.getLogger(__name__)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path, session, threads) -> None:
        self.path = path
        self._s = session
        self.threads = threads
        self._inp = session.get_inputs()[0]
        self._out_names = [o.name for o in session.get_outputs()]
        self._half = self._inp.type == "tensor(float16)"

    @classmethod
    def load(cls, path, threads=None, providers=None):
        path = check_file(path, "ONNX model")
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError("ONNX Runtime is not installed: pip install 'edge-emotion[onnx]'") from None
        opts = ort.SessionOptions()
        threads = threads or min(4, os.cpu_count() or 1)
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        available = ort.get_available_providers()
        wanted = providers or ["CPUExecutionProvider"]
        names = [p[0] if isinstance(p, (tuple, list)) else p for p in wanted]
        missing = [n for n in names if n not in available]
        if missing:
            raise BackendUnavailableError(
                f"ONNX Runtime providers {missing} are not available here (available: {available}); "
                "install onnxruntime-gpu for CUDA/TensorRT providers"
            )
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelError(f"{path}: ONNX Runtime cannot load this model: {exc}") from None
        return cls(path, sess, threads)

    @property
    def input_shape(self):
        return tuple(d if isinstance(d, int) else None for d in self._inp.shape)

    @property
    def precision(self) -> str:
        return "fp16" if self._half else "fp32"

    @property
    def providers(self) -> list[str]:
        return self._s.get_providers()

    def version(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} ({self.providers[0]})"

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = self._check_batch(batch)
        if self._half:
            batch = batch.astype(np.float16)
        outs = self._s.run(self._out_names, {self._inp.name: batch})
        return [np.asarray(o, dtype=np.float32) for o in outs]
