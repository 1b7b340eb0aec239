"""TensorRT engine builder (GPU only): ONNX -> serialized engine with the TensorRT Python API.

FP16 by default; INT8 with an entropy calibrator over real images. A timing cache is kept
next to the engine so rebuilds are fast. The engine's metadata goes to a JSON sidecar.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError
from ..metadata import ModelMetadata, sidecar_path

log = logging.getLogger(__name__)


def _require_trt():
    from ..runtime.backends.tensorrt import gpu_available

    ok, why = gpu_available()
    if not ok:
        raise BackendUnavailableError(f"TensorRT engines can only be built on an NVIDIA GPU with TensorRT: {why}")
    import tensorrt as trt

    return trt


def build_engine(onnx_path: Path, out: Path, meta: ModelMetadata, precision: str = "fp16", calib: np.ndarray | None = None,
                 max_batch: int = 32, workspace_mb: int = 1024, timing_cache: Path | None = None) -> Path:
    trt = _require_trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"{onnx_path}: TensorRT cannot parse this ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    cache_path = timing_cache or out.with_suffix(".timing.cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        if calib is None:
            raise ValueError("a TensorRT int8 engine needs calibration images")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
        config.int8_calibrator = _make_calibrator(trt, calib.astype(np.float32), out.with_suffix(".calib.cache"))
    inp = network.get_input(0)
    shape = tuple(inp.shape)
    profile = builder.create_optimization_profile()
    per = tuple(int(v) for v in shape[1:])
    profile.set_shape(inp.name, (1, *per), (min(8, max_batch), *per), (max_batch, *per))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    out.write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    sidecar_path(out).write_text(meta.derive(format="engine", precision=precision,
                                             extra={**meta.extra, "tensorrt": trt.__version__, "max_batch": max_batch}).to_json())
    return out


def _make_calibrator(trt, images: np.ndarray, cache: Path):
    from ..runtime.backends.tensorrt import _CudaMem

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.mem = _CudaMem()
            self.batch = 32
            self.i = 0
            self.buf, self.ptr = self.mem.empty((self.batch, *images.shape[1:]), np.float32)

        def get_batch_size(self):
            return self.batch

        def get_batch(self, names):
            if self.i + self.batch > len(images):
                return None
            chunk = np.ascontiguousarray(images[self.i : self.i + self.batch])
            self.i += self.batch
            if self.buf is not None:
                import torch

                self.buf.copy_(torch.from_numpy(chunk))
            else:
                self.mem.h2d(self.ptr, chunk)
                self.mem.sync()
            return [self.ptr]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, data):
            cache.write_bytes(bytes(data))

    return EntropyCalibrator()
