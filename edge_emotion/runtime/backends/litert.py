"""LiteRT (TFLite) backend: ai-edge-litert with XNNPACK; tflite-runtime or TensorFlow's interpreter as fallbacks."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

import numpy as np

from ...errors import BackendUnavailableError, ModelError
from ...formats import format_by_name
from .base import Backend, check_file

log = logging.getLogger(__name__)


def _interpreter_class():
    for mod in format_by_name("tflite").runtime_modules:
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        if mod == "tensorflow.lite":
            log.warning("using TensorFlow's TFLite interpreter; install ai-edge-litert for a lighter, faster runtime")
            return m.Interpreter, "tensorflow"
        return m.Interpreter, mod.split(".")[0]
    raise BackendUnavailableError(
        "no TFLite runtime installed: pip install 'edge-emotion[tflite]' (ai-edge-litert)"
    )


class LiteRTBackend(Backend):
    name = "litert"

    def __init__(self, path: Path, interpreter, runtime: str, threads: int | None) -> None:
        self.path = path
        self._it = interpreter
        self._runtime = runtime
        self.threads = threads
        self._inp = interpreter.get_input_details()[0]
        self._outs = interpreter.get_output_details()
        self._batch = int(self._inp["shape"][0])
        self._in_q = self._inp["quantization"] if self._inp["dtype"] != np.float32 else None
        sig = self._inp.get("shape_signature")
        self._dynamic = sig is not None and len(sig) > 0 and int(sig[0]) == -1

    @classmethod
    def load(cls, path, threads=None, providers=None):
        path = check_file(path, "TFLite model")
        return cls._open(path, {"model_path": str(path)}, threads)

    @classmethod
    def from_content(cls, content: bytes, path: str | Path, threads: int | None = None) -> "LiteRTBackend":
        """A model held in memory (e.g. rewritten by :mod:`.litert_resize`); ``path`` names it in messages."""
        return cls._open(Path(path), {"model_content": bytes(content)}, threads)

    @classmethod
    def resized(cls, content: bytes, height: int, width: int, path: str | Path,
                threads: int | None = None) -> "LiteRTBackend":
        """The model ``content`` rewritten for a ``height`` x ``width`` input (:mod:`.litert_resize`: fully
        convolutional detectors, one interpreter per frame shape); ``path`` names it in messages."""
        from .litert_resize import resize_input

        return cls.from_content(resize_input(content, height, width), f"{path} at {height}x{width}", threads=threads)

    @classmethod
    def _open(cls, path: Path, source: dict, threads: int | None) -> "LiteRTBackend":
        Interpreter, runtime = _interpreter_class()
        threads = threads or min(4, os.cpu_count() or 1)
        try:
            it = Interpreter(**source, num_threads=threads)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: LiteRT cannot load this model: {exc}") from None
        return cls(path, it, runtime, threads)

    @property
    def input_shape(self):
        return tuple(int(v) for v in self._inp["shape"])

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        """Each output's shape, in the order :meth:`infer` returns them."""
        return [tuple(int(v) for v in d["shape"]) for d in self._outs]

    @property
    def input_dtype(self):
        return self._inp["dtype"]

    @property
    def precision(self) -> str:
        return "int8" if self._inp["dtype"] in (np.int8, np.uint8) else "fp32"

    def version(self) -> str:
        try:
            from importlib.metadata import version

            return f"{self._runtime} {version({'ai_edge_litert': 'ai-edge-litert', 'tflite_runtime': 'tflite-runtime'}.get(self._runtime, self._runtime))}"
        except Exception:  # noqa: BLE001
            return self._runtime

    def _resize(self, n: int) -> None:
        if n != self._batch:
            shape = list(self._inp["shape"])
            shape[0] = n
            self._it.resize_tensor_input(self._inp["index"], shape, strict=False)
            self._it.allocate_tensors()
            self._inp = self._it.get_input_details()[0]
            self._outs = self._it.get_output_details()
            self._batch = n

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = self._check_batch(batch)
        n = len(batch)
        if self._dynamic and n != self._batch:
            # pad to the next power of two: a stream whose face count changes every frame
            # re-allocates the interpreter a handful of times, not on every change
            size = 1 << (n - 1).bit_length()
            if size != n:
                batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
            self._resize(size)
        elif n != self._batch:
            try:
                self._resize(n)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"{self.path}: this model has a fixed batch of {self._batch} and cannot take {n}: {exc}") from None
        return [o[:n] for o in self._run(batch)]

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._in_q is not None:
            scale, zero = self._in_q
            info = np.iinfo(self._inp["dtype"])
            batch = np.clip(np.round(batch / scale + zero), info.min, info.max).astype(self._inp["dtype"])
        self._it.set_tensor(self._inp["index"], batch)
        self._it.invoke()
        outs = []
        for d in self._outs:
            y = self._it.get_tensor(d["index"])
            if d["dtype"] != np.float32:
                scale, zero = d["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            outs.append(y)
        return outs
