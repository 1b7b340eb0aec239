"""Native TensorRT backend for serialized ``.engine`` files (NVIDIA GPU only: desktop GPUs and Jetson).

Written against the TensorRT 10/11 Python API (named I/O tensors, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). Device memory, pinned host staging and the CUDA
stream come from ``cuda-python``'s runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart``
on older cuda-python), which the ``tensorrt`` extra installs.

How an engine runs here:

* **Buffers once.** At load the input is set to the largest shape of optimisation profile 0
  (``max_batch``, 32 for engines built by ``edge-emotion export``), the output shapes TensorRT
  derives from it size one device buffer and one pinned host staging buffer per I/O tensor, and
  every tensor address is bound once. ``infer`` reuses them; :meth:`TensorRTBackend.close` (also
  ``with`` and, defensively, ``__del__``) frees each exactly once.
* **Chunks.** A batch larger than ``max_batch`` runs as consecutive chunks of at most
  ``max_batch`` rows, the outputs concatenated in order. A batch (or last chunk) smaller than the
  profile minimum is **zero-padded** up to the minimum and the padded rows are dropped from the
  outputs, so static-batch engines (min == max) take any batch size.
* **One stream.** Host->device copy, ``execute_async_v3`` and device->host copies are queued on
  the backend's single CUDA stream, which is synchronised once per chunk (once per call when the
  batch fits the profile) before the host reads the outputs.
* **Checked.** ``set_input_shape`` returning False raises :class:`~edge_emotion.errors.ModelError`
  naming the shape and the profile range; ``execute_async_v3`` returning False and any failing
  CUDA call raise :class:`TensorRTError` with the CUDA error name.

Engines are built for one GPU model and TensorRT version: a mismatch is reported with the versions
involved. The model's metadata is not read here: it lives in the JSON sidecar
``<model>.engine.json`` (:func:`edge_emotion.metadata.read_metadata`), read by the classifier.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, EdgeEmotionError, ModelError
from .base import Backend, check_file

log = logging.getLogger(__name__)

__all__ = ["TensorRTBackend", "TensorRTError", "gpu_available"]

_PROFILE = 0  # engines built by edge-emotion have one optimisation profile


class TensorRTError(EdgeEmotionError, RuntimeError):
    """A CUDA runtime call or a TensorRT execution failed on the GPU."""


def _import_cudart() -> Any:
    """cuda-python's runtime bindings module (new layout first, then the pre-12.6 one)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python; raises ImportError when absent
    return cudart


def _error_name(cudart: Any, err: Any) -> str:
    """``cudaErrorMemoryAllocation (2)`` for a cudaError_t, as readable as the bindings allow."""
    try:
        res = cudart.cudaGetErrorName(err)
        name = res[1] if isinstance(res, tuple) else res
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        return f"{name} ({int(err)})"
    except Exception:  # noqa: BLE001 - naming an error must never hide it
        return f"CUDA error {err!r}"


def _check(cudart: Any, what: str, result: Any) -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple; raise :class:`TensorRTError` unless ``err`` is success."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise TensorRTError(f"CUDA {what} failed: {_error_name(cudart, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def gpu_available() -> tuple[bool, str]:
    """Whether an NVIDIA GPU, TensorRT and cuda-python can run engines here, and if not, why."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "TensorRT is not installed (pip install 'edge-emotion[tensorrt]' on a machine with an NVIDIA GPU)"
    try:
        cudart = _import_cudart()
    except ImportError:
        return False, "cuda-python is not installed (pip install 'edge-emotion[tensorrt]'); it drives the GPU buffers and stream"
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # noqa: BLE001 - a missing driver surfaces as various exception types
        return False, f"the CUDA runtime cannot start: {exc}"
    if int(err) != 0:
        return False, f"no NVIDIA GPU visible (cudaGetDeviceCount: {_error_name(cudart, err)})"
    if int(count) == 0:
        return False, "no NVIDIA GPU visible (cudaGetDeviceCount found none)"
    return True, "ok"


@dataclass
class _Binding:
    """One I/O tensor: its device buffer and pinned host staging, sized for the profile's max batch."""

    name: str
    dtype: np.dtype
    max_shape: tuple[int, ...]
    device: int
    host: np.ndarray  # flat pinned staging, max_shape elements

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.max_shape)) * self.dtype.itemsize


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in shape)


class TensorRTBackend(Backend):
    """A deserialized TensorRT engine with preallocated buffers and one CUDA stream.

    ``infer`` is serialised by a lock (the buffers are shared). Call :meth:`close` (or use the
    backend as a context manager) to release the GPU memory deterministically.
    """

    name = "tensorrt"

    def __init__(self, path: Path, engine: Any, trt: Any, cudart: Any) -> None:
        self.path = Path(path)
        self._trt = trt
        self._rt = cudart
        self._engine = engine
        self._lock = threading.Lock()
        self._closed = False
        self._device_ptrs: list[int] = []  # every live allocation, freed once by close()
        self._host_ptrs: list[int] = []
        self._stream: Any = None
        self._ctx: Any = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        engine, trt = self._engine, self._trt
        self._ctx = engine.create_execution_context()
        if self._ctx is None:
            raise ModelError(f"{self.path}: TensorRT could not create an execution context (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or not outputs:
            raise ModelError(f"{self.path}: expected one input and at least one output tensor, the engine has "
                             f"inputs {inputs} and outputs {outputs}")
        self._in = inputs[0]
        in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._in)))
        if in_dtype.kind != "f":
            raise ModelError(f"{self.path}: input {self._in!r} is {in_dtype}; only float32/float16 engine inputs are "
                             "supported (build int8 engines from the QDQ ONNX, which keeps float I/O)")
        shape = _dims(engine.get_tensor_shape(self._in))
        if any(v < 0 for v in shape[1:]):
            raise ModelError(f"{self.path}: input {self._in!r} has shape {shape}; only the batch dimension may be dynamic")
        if shape[0] < 0:
            lo, _opt, hi = (_dims(s) for s in engine.get_tensor_profile_shape(self._in, _PROFILE))
            self.min_batch, self.max_batch = lo[0], hi[0]
        else:  # static batch: the profile is the engine's own shape
            self.min_batch = self.max_batch = shape[0]
        if not 1 <= self.min_batch <= self.max_batch:
            raise ModelError(f"{self.path}: optimisation profile {_PROFILE} has an unusable batch range "
                             f"{self.min_batch}..{self.max_batch}")
        self._sample_shape = shape[1:]
        self._shape_set: tuple[int, ...] | None = None
        self._set_input_shape((self.max_batch, *self._sample_shape))

        self._stream = _check(self._rt, "cudaStreamCreate", self._rt.cudaStreamCreate())
        self._stream_handle = int(self._stream)
        self._input = self._allocate(self._in, in_dtype, (self.max_batch, *self._sample_shape))
        self._outputs: list[_Binding] = []
        for name in outputs:
            out_shape = _dims(self._ctx.get_tensor_shape(name))
            if any(v < 0 for v in out_shape):
                raise ModelError(f"{self.path}: output {name!r} has data-dependent shape {out_shape}; not supported")
            if not out_shape or out_shape[0] != self.max_batch:
                raise ModelError(f"{self.path}: output {name!r} has shape {out_shape} for a batch of {self.max_batch}; "
                                 "outputs must be batch-major")
            self._outputs.append(self._allocate(name, np.dtype(trt.nptype(engine.get_tensor_dtype(name))), out_shape))
        for b in (self._input, *self._outputs):
            if self._ctx.set_tensor_address(b.name, b.device) is False:
                raise TensorRTError(f"{self.path}: TensorRT refused the device address for tensor {b.name!r}")
        total = sum(b.nbytes for b in (self._input, *self._outputs))
        log.info("%s: TensorRT %s engine, input %r %s, batch %d..%d, outputs %s; %.1f MiB of I/O buffers allocated once",
                 self.path.name, trt.__version__, self._in, self._sample_shape, self.min_batch, self.max_batch,
                 [b.name for b in self._outputs], total / 2**20)

    def _allocate(self, name: str, dtype: np.dtype, max_shape: tuple[int, ...]) -> _Binding:
        """One device buffer + one pinned host buffer for ``max_shape``; both tracked for :meth:`close`."""
        nbytes = int(np.prod(max_shape)) * dtype.itemsize
        device = int(_check(self._rt, f"cudaMalloc({nbytes}) for {name!r}", self._rt.cudaMalloc(nbytes)))
        self._device_ptrs.append(device)
        host_ptr = int(_check(self._rt, f"cudaMallocHost({nbytes}) for {name!r}", self._rt.cudaMallocHost(nbytes)))
        self._host_ptrs.append(host_ptr)
        raw = (ctypes.c_ubyte * nbytes).from_address(host_ptr)
        host = np.frombuffer(raw, dtype=dtype, count=int(np.prod(max_shape)))
        return _Binding(name, dtype, max_shape, device, host)

    def _set_input_shape(self, shape: tuple[int, ...]) -> None:
        if shape == self._shape_set:
            return
        if not self._ctx.set_input_shape(self._in, shape):
            self._shape_set = None
            raise ModelError(f"{self.path}: TensorRT rejected input shape {shape} for {self._in!r}: optimisation "
                             f"profile {_PROFILE} accepts batch sizes {self.min_batch}..{self.max_batch} of per-sample "
                             f"shape {self._sample_shape}")
        self._shape_set = shape

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, threads: int | None = None, providers: list | None = None) -> "TensorRTBackend":
        """Deserialize ``path``; ``threads`` and ``providers`` do not apply to TensorRT and are ignored."""
        path = check_file(path, kind="TensorRT engine")
        ok, why = gpu_available()
        if not ok:
            raise BackendUnavailableError(f"{path}: cannot run a TensorRT engine here: {why}")
        import tensorrt as trt

        cudart = _import_cudart()
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ModelError(f"{path}: TensorRT {trt.__version__} could not deserialize this engine; engines only load on the "
                             "TensorRT version and GPU model that built them: rebuild it with `edge-emotion export --format engine`")
        return cls(path, engine, trt, cudart)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(int(v) if v >= 0 else None for v in self._engine.get_tensor_shape(self._in))

    @property
    def precision(self) -> str:
        return "fp16/int8 (engine)"

    def version(self) -> str:
        return f"tensorrt {self._trt.__version__}"

    # ------------------------------------------------------------------ inference
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run ``batch`` (N, H, W, C) in chunks of at most ``max_batch``; outputs as float32, N rows each.

        Chunks smaller than the profile minimum are zero-padded and the padding is dropped again."""
        batch = self._check_batch(batch)
        n = len(batch)
        with self._lock:
            if self._closed:
                raise TensorRTError(f"{self.path}: this TensorRT backend was closed")
            if n == 0:
                return [np.zeros((0, *b.max_shape[1:]), np.float32) for b in self._outputs]
            parts: list[list[np.ndarray]] = [[] for _ in self._outputs]
            if n > self.max_batch:
                log.debug("%s: batch of %d split into chunks of %d", self.path.name, n, self.max_batch)
            for start in range(0, n, self.max_batch):
                for acc, out in zip(parts, self._run_chunk(batch[start:start + self.max_batch])):
                    acc.append(out)
        return [p[0] if len(p) == 1 else np.concatenate(p) for p in parts]

    def _run_chunk(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Copy in, execute, copy out on the one stream; synchronise once; return float32 outputs."""
        m = len(chunk)
        rows = max(m, self.min_batch)
        if rows > m:
            log.debug("%s: chunk of %d padded to the profile minimum %d", self.path.name, m, rows)
        self._set_input_shape((rows, *self._sample_shape))
        per = int(np.prod(self._sample_shape))
        staged = self._input.host[: rows * per].reshape(rows, *self._sample_shape)
        staged[:m] = chunk  # casts to the engine's input dtype
        staged[m:] = 0
        rt, stream = self._rt, self._stream
        _check(rt, "cudaMemcpyAsync host->device", rt.cudaMemcpyAsync(
            self._input.device, self._input.host.ctypes.data, rows * per * self._input.dtype.itemsize,
            rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
        if not self._ctx.execute_async_v3(self._stream_handle):
            self._drain()
            raise TensorRTError(f"{self.path}: TensorRT execute_async_v3 failed for input shape "
                                f"{(rows, *self._sample_shape)} (see the TensorRT log above)")
        views = []
        for b in self._outputs:
            shape = _dims(self._ctx.get_tensor_shape(b.name))
            count = int(np.prod(shape))
            if shape[0] != rows or count > b.host.size:
                self._drain()
                raise TensorRTError(f"{self.path}: output {b.name!r} has shape {shape} for a batch of {rows}, "
                                    f"which does not fit its buffer {b.max_shape}")
            _check(rt, "cudaMemcpyAsync device->host", rt.cudaMemcpyAsync(
                b.host.ctypes.data, b.device, count * b.dtype.itemsize, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
            views.append(b.host[:count].reshape(shape))
        _check(rt, "cudaStreamSynchronize", rt.cudaStreamSynchronize(stream))
        return [v[:m].astype(np.float32) for v in views]  # copies: the staging is reused by the next chunk

    def _drain(self) -> None:
        """Wait for queued work before the staging buffers are reused (error paths); never raises."""
        try:
            self._rt.cudaStreamSynchronize(self._stream)
        except Exception:  # noqa: BLE001
            log.debug("stream synchronisation failed while handling an error", exc_info=True)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Free the device and pinned buffers and the stream, each exactly once. Safe to call repeatedly."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ did not get far enough to own anything
            return
        with lock:
            if self._closed:
                return
            self._closed = True
            rt = self._rt
            if self._stream is not None:
                self._drain()
            failures = []
            while self._device_ptrs:
                ptr = self._device_ptrs.pop()
                failures += self._free(rt.cudaFree, ptr, "cudaFree")
            while self._host_ptrs:
                ptr = self._host_ptrs.pop()
                failures += self._free(rt.cudaFreeHost, ptr, "cudaFreeHost")
            if self._stream is not None:
                stream, self._stream = self._stream, None
                failures += self._free(rt.cudaStreamDestroy, stream, "cudaStreamDestroy")
            self._ctx = None  # the context goes before the engine
            for what in failures:
                log.warning("%s: %s while releasing TensorRT buffers", self.path.name, what)

    def _free(self, fn: Any, handle: Any, what: str) -> list[str]:
        try:
            _check(self._rt, what, fn(handle))
        except Exception as exc:  # noqa: BLE001 - keep freeing the rest
            return [str(exc)]
        return []

    def __enter__(self) -> "TensorRTBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn the bindings down
            pass
