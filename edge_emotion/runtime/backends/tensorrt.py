"""Native TensorRT backend for serialized ``.engine`` files (NVIDIA GPU only).

Written against the TensorRT 10 Python API (``execute_async_v3`` with named tensors);
device memory is handled through ``cuda-python``'s runtime bindings when present, or
through PyTorch's CUDA tensors. Engines are built for one GPU model and TensorRT
version: a mismatch is reported with the versions involved.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...errors import BackendUnavailableError, ModelError
from .base import Backend, check_file

log = logging.getLogger(__name__)


def gpu_available() -> tuple[bool, str]:
    """Whether an NVIDIA GPU and TensorRT can run here, and if not, why."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError:
        return False, "TensorRT is not installed (pip install 'edge-emotion[tensorrt]' on a machine with an NVIDIA GPU)"
    try:
        import torch

        if torch.cuda.is_available():
            return True, "ok"
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            return False, "neither cuda-python nor PyTorch with CUDA is installed to drive the GPU"
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        return False, "no NVIDIA GPU visible (cudaGetDeviceCount found none)"
    return True, "ok"


class _CudaMem:
    """Minimal device buffers + stream on cuda-python or torch."""

    def __init__(self) -> None:
        try:
            import torch

            if not torch.cuda.is_available():
                raise ImportError
            self._torch = torch
            self.stream = torch.cuda.Stream()
            self.stream_handle = self.stream.cuda_stream
        except ImportError:
            self._torch = None
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                from cuda import cudart
            self._rt = cudart
            err, self.stream_handle = cudart.cudaStreamCreate()
            self._ok(err, "cudaStreamCreate")

    def _ok(self, err, what: str) -> None:
        if int(err) != 0:
            raise RuntimeError(f"CUDA {what} failed with error {err}")

    def empty(self, shape, dtype):
        if self._torch is not None:
            tdt = {np.float32: self._torch.float32, np.float16: self._torch.float16, np.int8: self._torch.int8,
                   np.int32: self._torch.int32}[np.dtype(dtype).type]
            t = self._torch.empty(tuple(shape), dtype=tdt, device="cuda")
            return t, t.data_ptr()
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        err, ptr = self._rt.cudaMalloc(nbytes)
        self._ok(err, "cudaMalloc")
        return None, int(ptr)

    def h2d(self, dst_ptr: int, arr: np.ndarray) -> None:
        if self._torch is not None:
            raise AssertionError
        (err,) = self._rt.cudaMemcpyAsync(dst_ptr, arr.ctypes.data, arr.nbytes,
                                           self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream_handle)
        self._ok(err, "cudaMemcpyAsync H2D")

    def d2h(self, arr: np.ndarray, src_ptr: int) -> None:
        (err,) = self._rt.cudaMemcpyAsync(arr.ctypes.data, src_ptr, arr.nbytes,
                                           self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream_handle)
        self._ok(err, "cudaMemcpyAsync D2H")

    def sync(self) -> None:
        if self._torch is not None:
            self.stream.synchronize()
        else:
            (err,) = self._rt.cudaStreamSynchronize(self.stream_handle)
            self._ok(err, "cudaStreamSynchronize")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: Path, engine, trt) -> None:
        self.path = path
        self._trt = trt
        self._engine = engine
        self._ctx = engine.create_execution_context()
        self._mem = _CudaMem()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._in = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT][0]
        self._outs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._in_dtype = trt.nptype(engine.get_tensor_dtype(self._in))

    @classmethod
    def load(cls, path, threads=None, providers=None):
        path = check_file(path, kind="TensorRT engine")
        ok, why = gpu_available()
        if not ok:
            raise BackendUnavailableError(f"{path}: cannot run a TensorRT engine here: {why}")
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ModelError(f"{path}: TensorRT {trt.__version__} could not deserialize this engine; engines only load on the "
                             "TensorRT version and GPU model that built them: rebuild it with `edge-emotion export --format engine`")
        return cls(path, engine, trt)

    @property
    def input_shape(self):
        return tuple(int(v) if v >= 0 else None for v in self._engine.get_tensor_shape(self._in))

    @property
    def precision(self) -> str:
        return "fp16/int8 (engine)"

    def version(self) -> str:
        return f"tensorrt {self._trt.__version__}"

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = np.ascontiguousarray(self._check_batch(batch), dtype=self._in_dtype)
        self._ctx.set_input_shape(self._in, batch.shape)
        torch = self._mem._torch
        bufs = []
        if torch is not None:
            t_in = torch.from_numpy(batch).cuda()
            self._ctx.set_tensor_address(self._in, t_in.data_ptr())
            bufs.append(t_in)
        else:
            _, ptr = self._mem.empty(batch.shape, batch.dtype)
            self._mem.h2d(ptr, batch)
            self._ctx.set_tensor_address(self._in, ptr)
        outs = []
        for name in self._outs:
            shape = tuple(self._ctx.get_tensor_shape(name))
            dtype = self._trt.nptype(self._engine.get_tensor_dtype(name))
            t, ptr = self._mem.empty(shape, dtype)
            self._ctx.set_tensor_address(name, ptr)
            outs.append((t, ptr, shape, dtype))
        if not self._ctx.execute_async_v3(self._mem.stream_handle):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        result = []
        for t, ptr, shape, dtype in outs:
            if t is not None:
                self._mem.sync()
                result.append(t.float().cpu().numpy())
            else:
                host = np.empty(shape, dtype)
                self._mem.d2h(host, ptr)
                self._mem.sync()
                result.append(host.astype(np.float32))
        return result
