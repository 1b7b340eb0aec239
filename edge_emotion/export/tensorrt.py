"""TensorRT engine builder (GPU only): ONNX -> serialized engine with the TensorRT Python API.

Precision is carried by the ONNX itself, which works on TensorRT 10 and 11 alike: FP16 engines
are built from the fp16 ONNX export, INT8 engines from the QDQ int8 ONNX export (explicit
quantisation, calibrated on real images by the ONNX exporter). TensorRT 11 removed the
precision builder flags and implicit-quantisation calibrators (networks are strongly typed);
on TensorRT 10 the FP16/INT8 flags are also set so it may pick those kernels. A timing cache is
kept next to the engine so rebuilds are fast; the engine's metadata goes to a JSON sidecar.
"""

from __future__ import annotations

import logging
from pathlib import Path

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


def build_engine(onnx_path: Path, out: Path, meta: ModelMetadata | None, precision: str = "fp16", max_batch: int = 32,
                 workspace_mb: int = 1024, timing_cache: Path | None = None) -> Path:
    """Build ``out`` from ``onnx_path`` (already in the wanted precision) with a batch 1..max_batch profile."""
    trt = _require_trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"{onnx_path}: TensorRT cannot parse this ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    cache_path = timing_cache or out.with_suffix(".timing.cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    flags = {"fp16": ["FP16"], "int8": ["INT8", "FP16"]}.get(precision, [])
    for name in flags:  # TensorRT 10 only; 11.x reads precision from the (strongly typed) ONNX
        if hasattr(trt.BuilderFlag, name):
            config.set_flag(getattr(trt.BuilderFlag, name))
    inp = network.get_input(0)
    per = tuple(int(v) for v in tuple(inp.shape)[1:])
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, (1, *per), (min(8, max_batch), *per), (max_batch, *per))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    out.write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    if meta is not None:
        sidecar_path(out).write_text(meta.derive(format="engine", precision=precision,
                                                 extra={**meta.extra, "tensorrt": trt.__version__, "max_batch": max_batch}).to_json())
    return out
