"""The TensorRT backend's buffer, chunking, stream and error logic, on CPU.

Fake ``tensorrt`` and ``cuda.bindings.runtime`` modules are installed into ``sys.modules``. They
record every call and emulate a GPU closely enough to catch real mistakes: device memory is a
byte array per ``cudaMalloc``; ``cudaMemcpyAsync`` and ``execute_async_v3`` are *queued* on their
stream and only run at ``cudaStreamSynchronize`` of that same stream, so copying or executing on
another stream, or reading outputs before synchronising, gives wrong numbers. The engine computes
``probs = mean over pixels @ W`` and ``score = sum over the sample`` (float16).

No GPU, no real TensorRT and no TensorFlow are needed.
"""

from __future__ import annotations

import ctypes
import enum
import gc
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edge_emotion.errors import ModelError

H, W, C, K = 4, 4, 3, 7
SAMPLE = (H, W, C)


# ---------------------------------------------------------------- fake CUDA runtime
class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


class FakeStream:
    """Like cuda-python's cudaStream_t: an object whose int() is the raw handle."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __int__(self) -> int:
        return self.handle


class FakeCuda:
    """Records every runtime call; queues async work per stream; fails on request."""

    def __init__(self) -> None:
        self.events: list[tuple] = []  # (kind, stream handle, ...) in call order
        self.device: dict[int, bytearray] = {}  # live device allocations
        self.device_sizes: dict[int, int] = {}  # every device allocation ever made
        self.device_freed: list[int] = []
        self.pinned: dict[int, np.ndarray] = {}
        self.pinned_sizes: dict[int, int] = {}
        self.pinned_freed: list[int] = []
        self.streams: dict[int, list] = {}
        self.streams_destroyed: list[int] = []
        self.fail: dict[str, int] = {}  # function name -> fail on its n-th call (1-based)
        self.counts: dict[str, int] = {}
        self.device_count = 1
        self._next_dev = 0x7000_0000_0000
        self._next_stream = 0xA000

    # helpers
    def _failing(self, fn: str) -> bool:
        self.counts[fn] = self.counts.get(fn, 0) + 1
        return self.fail.get(fn) == self.counts[fn]

    def _dev(self, addr: int, n: int) -> tuple[bytearray, int]:
        for base, buf in self.device.items():
            if base <= addr < base + len(buf):
                assert addr - base + n <= len(buf), "copy past the end of a device buffer"
                return buf, addr - base
        raise AssertionError(f"device address {addr:#x} is not a live allocation")

    def is_pinned(self, addr: int, n: int) -> bool:
        for base, arr in self.pinned.items():
            if base <= addr and addr + n <= base + arr.nbytes:
                return True
        return False

    def enqueue(self, handle: int, op) -> None:
        self.streams.setdefault(handle, []).append(op)

    # the cuda.bindings.runtime API
    def cudaGetErrorName(self, err):
        return cudaError_t.cudaSuccess, cudaError_t(int(err)).name.encode()

    def cudaGetDeviceCount(self):
        return cudaError_t.cudaSuccess, self.device_count

    def cudaStreamCreate(self):
        if self._failing("cudaStreamCreate"):
            return cudaError_t.cudaErrorInvalidValue, None
        self._next_stream += 1
        self.streams[self._next_stream] = []
        self.events.append(("stream_create", self._next_stream))
        return cudaError_t.cudaSuccess, FakeStream(self._next_stream)

    def cudaStreamDestroy(self, stream):
        self.streams_destroyed.append(int(stream))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(self, stream):
        h = int(stream)
        self.events.append(("sync", h))
        queue = self.streams.get(h, [])
        while queue:
            queue.pop(0)()
        return (cudaError_t.cudaSuccess,)

    def cudaMalloc(self, nbytes):
        if self._failing("cudaMalloc"):
            return cudaError_t.cudaErrorMemoryAllocation, 0
        self._next_dev += 1 << 32
        self.device[self._next_dev] = bytearray(nbytes)
        self.device_sizes[self._next_dev] = nbytes
        return cudaError_t.cudaSuccess, self._next_dev

    def cudaFree(self, ptr):
        self.device_freed.append(int(ptr))
        if self.device.pop(int(ptr), None) is None:
            return (cudaError_t.cudaErrorInvalidValue,)
        return (cudaError_t.cudaSuccess,)

    def cudaMallocHost(self, nbytes):
        if self._failing("cudaMallocHost"):
            return cudaError_t.cudaErrorMemoryAllocation, 0
        arr = np.zeros(max(nbytes, 1), np.uint8)
        self.pinned[arr.ctypes.data] = arr
        self.pinned_sizes[arr.ctypes.data] = nbytes
        return cudaError_t.cudaSuccess, arr.ctypes.data

    def cudaFreeHost(self, ptr):
        self.pinned_freed.append(int(ptr))
        if self.pinned.pop(int(ptr), None) is None:
            return (cudaError_t.cudaErrorInvalidValue,)
        return (cudaError_t.cudaSuccess,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        h, dst, src, nbytes = int(stream), int(dst), int(src), int(nbytes)
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            self.events.append(("h2d", h, nbytes, self.is_pinned(src, nbytes)))

            def op():
                buf, off = self._dev(dst, nbytes)
                buf[off:off + nbytes] = ctypes.string_at(src, nbytes)
        else:
            self.events.append(("d2h", h, nbytes, self.is_pinned(dst, nbytes)))

            def op():
                buf, off = self._dev(src, nbytes)
                ctypes.memmove(dst, bytes(buf[off:off + nbytes]), nbytes)
        self.enqueue(h, op)
        return (cudaError_t.cudaSuccess,)

    def module(self) -> types.ModuleType:
        m = types.ModuleType("cuda.bindings.runtime")
        m.cudaError_t = cudaError_t
        m.cudaMemcpyKind = cudaMemcpyKind
        for name in ("cudaGetErrorName", "cudaGetDeviceCount", "cudaStreamCreate", "cudaStreamDestroy",
                     "cudaStreamSynchronize", "cudaMalloc", "cudaFree", "cudaMallocHost", "cudaFreeHost",
                     "cudaMemcpyAsync"):
            setattr(m, name, getattr(self, name))
        return m


# ---------------------------------------------------------------- fake TensorRT
class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1


def nptype(dt: DataType):
    return {DataType.FLOAT: np.float32, DataType.HALF: np.float16}[dt]


MATRIX = np.random.default_rng(7).uniform(0.1, 1.0, size=(C, K)).astype(np.float32)


def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the fake engine computes, written independently of it."""
    x = x.astype(np.float32)
    probs = np.einsum("nhwc,ck->nk", x, MATRIX) / (H * W)
    score = x.reshape(len(x), -1).sum(axis=1, keepdims=True).astype(np.float16).astype(np.float32)
    return probs, score


@dataclass
class EngineSpec:
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    static_batch: int | None = None
    in_dtype: DataType = DataType.FLOAT


@dataclass
class FakeContext:
    engine: "FakeEngine"
    cuda: FakeCuda
    shape: tuple | None = None
    addresses: dict = field(default_factory=dict)
    reject: set = field(default_factory=set)  # batch sizes set_input_shape refuses
    fail_execute: bool = False
    executed_inputs: list = field(default_factory=list)  # input arrays seen at execution time

    def set_input_shape(self, name, shape):
        shape = tuple(int(v) for v in shape)
        self.cuda.events.append(("set_input_shape", name, shape))
        lo, hi = self.engine.batch_range
        ok = name == "input" and shape[1:] == SAMPLE and lo <= shape[0] <= hi and shape[0] not in self.reject
        if ok:
            self.shape = shape
        return ok

    def get_tensor_shape(self, name):
        n = self.shape[0] if self.shape else -1
        return {"input": self.shape or self.engine.get_tensor_shape("input"), "probs": (n, K), "score": (n, 1)}[name]

    def set_tensor_address(self, name, ptr):
        self.cuda.events.append(("set_tensor_address", name, int(ptr)))
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle):
        h = int(stream_handle)
        self.cuda.events.append(("execute", h, self.shape))
        if self.fail_execute:
            return False
        shape, addr = self.shape, dict(self.addresses)  # captured at enqueue, like TensorRT
        in_dt = np.dtype(nptype(self.engine.spec.in_dtype))

        def op():
            n_in = int(np.prod(shape)) * in_dt.itemsize
            buf, off = self.cuda._dev(addr["input"], n_in)
            x = np.frombuffer(bytes(buf[off:off + n_in]), in_dt).reshape(shape)
            self.executed_inputs.append(x.copy())
            probs, score = reference(x)
            for name, arr in (("probs", probs.astype(np.float32)), ("score", score.astype(np.float16))):
                out, o = self.cuda._dev(addr[name], arr.nbytes)
                out[o:o + arr.nbytes] = arr.tobytes()

        self.cuda.enqueue(h, op)
        return True


class FakeEngine:
    names = ("input", "probs", "score")

    def __init__(self, cuda: FakeCuda, spec: EngineSpec) -> None:
        self.cuda, self.spec = cuda, spec
        self.contexts: list[FakeContext] = []
        self.profile_queries = 0

    @property
    def batch_range(self) -> tuple[int, int]:
        if self.spec.static_batch:
            return self.spec.static_batch, self.spec.static_batch
        return self.spec.min_batch, self.spec.max_batch

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if name == "input" else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return {"input": self.spec.in_dtype, "probs": DataType.FLOAT, "score": DataType.HALF}[name]

    def get_tensor_shape(self, name):
        n = self.spec.static_batch or -1
        return {"input": (n, *SAMPLE), "probs": (n, K), "score": (n, 1)}[name]

    def get_tensor_profile_shape(self, name, profile_index):
        assert name == "input" and profile_index == 0
        self.profile_queries += 1
        s = self.spec
        return [(s.min_batch, *SAMPLE), (s.opt_batch, *SAMPLE), (s.max_batch, *SAMPLE)]

    def create_execution_context(self):
        ctx = FakeContext(self, self.cuda)
        self.contexts.append(ctx)
        return ctx


def fake_tensorrt(cuda: FakeCuda, holder: dict) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.99-fake"
    trt.TensorIOMode = TensorIOMode
    trt.DataType = DataType
    trt.nptype = nptype

    class Logger:
        WARNING = 2

        def __init__(self, level=None) -> None:
            self.level = level

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            if data == b"bad":
                return None
            holder["engine"] = FakeEngine(cuda, holder["spec"])
            return holder["engine"]

    trt.Logger, trt.Runtime = Logger, Runtime
    return trt


# ---------------------------------------------------------------- fixtures
@dataclass
class Fakes:
    cuda: FakeCuda
    holder: dict
    tmp: Path

    def load(self, spec: EngineSpec | None = None, data: bytes = b"fake engine"):
        from edge_emotion.runtime.backends.tensorrt import TensorRTBackend

        self.holder["spec"] = spec or EngineSpec()
        path = self.tmp / "model.engine"
        path.write_bytes(data)
        return TensorRTBackend.load(path)

    @property
    def engine(self) -> FakeEngine:
        return self.holder["engine"]

    @property
    def ctx(self) -> FakeContext:
        return self.engine.contexts[0]

    def kinds(self, *which: str) -> list[tuple]:
        return [e for e in self.cuda.events if e[0] in which]


@pytest.fixture
def fakes(monkeypatch, tmp_path) -> Fakes:
    cuda = FakeCuda()
    holder: dict = {}
    rt = cuda.module()
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = rt
    pkg = types.ModuleType("cuda")
    pkg.bindings, pkg.cudart = bindings, rt
    for name, mod in (("cuda", pkg), ("cuda.bindings", bindings), ("cuda.bindings.runtime", rt), ("cuda.cudart", rt),
                      ("tensorrt", fake_tensorrt(cuda, holder))):
        monkeypatch.setitem(sys.modules, name, mod)
    return Fakes(cuda, holder, tmp_path)


def batch_of(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=(n, *SAMPLE)).astype(np.float32)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("in_dtype", [DataType.FLOAT, DataType.HALF])
def test_big_batch_is_chunked_and_matches_the_reference_in_order(fakes, in_dtype):
    be = fakes.load(EngineSpec(in_dtype=in_dtype))
    x = batch_of(70)
    probs, score = be.infer(x)
    assert [e[2][0] for e in fakes.kinds("execute")] == [32, 32, 6]
    assert probs.shape == (70, K) and score.shape == (70, 1)
    assert probs.dtype == np.float32 and score.dtype == np.float32
    ref_x = x.astype(np.float16) if in_dtype is DataType.HALF else x
    ref_probs, ref_score = reference(ref_x)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(score, ref_score, rtol=1e-3)
    # rows really are in order: each executed chunk saw the matching slice of the batch
    seen = np.concatenate(fakes.ctx.executed_inputs)
    np.testing.assert_array_equal(seen, ref_x)


def test_buffers_are_allocated_once_for_the_max_batch(fakes):
    be = fakes.load()
    dev, pinned = dict(fakes.cuda.device_sizes), dict(fakes.cuda.pinned_sizes)
    want = sorted([32 * H * W * C * 4, 32 * K * 4, 32 * 1 * 2])
    assert sorted(dev.values()) == want and sorted(pinned.values()) == want
    addresses = fakes.kinds("set_tensor_address")
    for n in (1, 32, 70, 5, 33, 2):
        out = be.infer(batch_of(n, seed=n))
        np.testing.assert_allclose(out[0], reference(batch_of(n, seed=n))[0], rtol=1e-5, atol=1e-6)
    assert fakes.cuda.device_sizes == dev and fakes.cuda.pinned_sizes == pinned
    assert fakes.kinds("set_tensor_address") == addresses  # bound once at load
    assert all(e[3] for e in fakes.kinds("h2d", "d2h")), "copies must go through the pinned staging buffers"
    assert fakes.cuda.counts.get("cudaStreamCreate") == 1


def test_close_frees_every_allocation_exactly_once(fakes):
    be = fakes.load()
    be.infer(batch_of(40))
    dev, pinned = set(fakes.cuda.device_sizes), set(fakes.cuda.pinned_sizes)
    (stream,) = fakes.cuda.streams
    be.close()
    be.close()
    del be
    gc.collect()
    assert sorted(fakes.cuda.device_freed) == sorted(dev)
    assert sorted(fakes.cuda.pinned_freed) == sorted(pinned)
    assert fakes.cuda.streams_destroyed == [stream]
    assert not fakes.cuda.device and not fakes.cuda.pinned


def test_closed_backend_refuses_to_run_and_context_manager_closes(fakes):
    from edge_emotion.runtime.backends.tensorrt import TensorRTError

    with fakes.load() as be:
        be.infer(batch_of(3))
        assert not fakes.cuda.device_freed
    assert len(fakes.cuda.device_freed) == 3 and len(fakes.cuda.pinned_freed) == 3
    with pytest.raises(TensorRTError, match="closed"):
        be.infer(batch_of(3))


def test_garbage_collection_frees_an_unclosed_backend_once(fakes):
    be = fakes.load()
    be.infer(batch_of(2))
    del be
    gc.collect()
    assert len(fakes.cuda.device_freed) == 3 == len(set(fakes.cuda.device_freed))
    assert len(fakes.cuda.pinned_freed) == 3 == len(set(fakes.cuda.pinned_freed))


def test_copies_and_executes_share_one_stream_synchronised_once_per_chunk(fakes):
    be = fakes.load()
    (created,) = [e[1] for e in fakes.kinds("stream_create")]
    be.infer(batch_of(70))
    be.infer(batch_of(5))
    work = fakes.kinds("h2d", "execute", "d2h", "sync")
    assert {e[1] for e in work} == {created}
    pattern = ["h2d", "execute", "d2h", "d2h", "sync"]
    assert [e[0] for e in work] == pattern * 4  # 3 chunks, then 1 call within the profile


def test_rejected_input_shape_is_a_model_error_naming_shape_and_profile(fakes):
    be = fakes.load()
    fakes.ctx.reject.add(5)
    with pytest.raises(ModelError) as info:
        be.infer(batch_of(5))
    msg = str(info.value)
    assert "(5, 4, 4, 3)" in msg and "1..32" in msg and "input" in msg
    assert not fakes.kinds("execute")
    out = be.infer(batch_of(6))  # the failure left nothing half-set
    np.testing.assert_allclose(out[0], reference(batch_of(6))[0], rtol=1e-5, atol=1e-6)


def test_rejected_profile_max_at_load_frees_everything(fakes, monkeypatch):
    class Rejecting(FakeContext):
        def set_input_shape(self, name, shape):
            super().set_input_shape(name, shape)
            return False

    def create(engine):
        engine.contexts.append(Rejecting(engine, engine.cuda))
        return engine.contexts[-1]

    monkeypatch.setattr(FakeEngine, "create_execution_context", create)
    with pytest.raises(ModelError, match=r"\(32, 4, 4, 3\).*1\.\.32"):
        fakes.load()
    assert not fakes.cuda.device and not fakes.cuda.pinned
    assert sorted(fakes.cuda.streams_destroyed) == sorted(fakes.cuda.streams)


def test_failed_execution_raises_a_clear_error(fakes):
    from edge_emotion.runtime.backends.tensorrt import TensorRTError

    be = fakes.load()
    fakes.ctx.fail_execute = True
    with pytest.raises(TensorRTError, match=r"execute_async_v3 failed.*\(3, 4, 4, 3\)"):
        be.infer(batch_of(3))
    assert isinstance(TensorRTError("x"), RuntimeError)


@pytest.mark.parametrize("fn,nth", [("cudaMalloc", 2), ("cudaMallocHost", 3), ("cudaStreamCreate", 1)])
def test_cuda_errors_are_named_and_partial_allocations_freed(fakes, fn, nth):
    from edge_emotion.runtime.backends.tensorrt import TensorRTError

    fakes.cuda.fail[fn] = nth
    with pytest.raises(TensorRTError, match=fn) as info:
        fakes.load()
    assert "cudaError" in str(info.value)
    assert not fakes.cuda.device and not fakes.cuda.pinned, "allocations made before the failure leaked"
    assert len(fakes.cuda.device_freed) == len(set(fakes.cuda.device_freed))
    assert sorted(fakes.cuda.streams_destroyed) == sorted(fakes.cuda.streams)


def test_small_batches_are_padded_to_the_profile_minimum(fakes):
    be = fakes.load(EngineSpec(min_batch=4, opt_batch=8, max_batch=16))
    # 35 = 16 + 16 + 3 -> the last chunk is padded to 4 (its 4th staging row held data of chunk 2)
    x = batch_of(35, seed=3)
    probs, _ = be.infer(x)
    assert [e[2][0] for e in fakes.kinds("execute")] == [16, 16, 4]
    np.testing.assert_allclose(probs, reference(x)[0], rtol=1e-5, atol=1e-6)
    assert not fakes.ctx.executed_inputs[-1][3:].any(), "padding rows must be zeros, not stale data"
    x = batch_of(2)
    (probs, score) = be.infer(x)
    assert fakes.kinds("execute")[-1][2] == (4, *SAMPLE)
    assert probs.shape == (2, K) and score.shape == (2, 1)
    np.testing.assert_allclose(probs, reference(x)[0], rtol=1e-5, atol=1e-6)
    seen = fakes.ctx.executed_inputs[-1]
    np.testing.assert_array_equal(seen[:2], x)
    assert not seen[2:].any(), "padding rows must be zeros, not stale data"


def test_static_batch_engine_needs_no_profile_and_pads_and_chunks(fakes):
    be = fakes.load(EngineSpec(static_batch=8))
    assert fakes.engine.profile_queries == 0
    assert be.input_shape == (8, *SAMPLE) and (be.min_batch, be.max_batch) == (8, 8)
    x = batch_of(20)
    probs, _ = be.infer(x)
    assert [e[2][0] for e in fakes.kinds("execute")] == [8, 8, 8]
    np.testing.assert_allclose(probs, reference(x)[0], rtol=1e-5, atol=1e-6)


def test_dynamic_engine_reports_a_dynamic_batch_and_empty_batches_work(fakes):
    be = fakes.load()
    assert be.input_shape == (None, *SAMPLE)
    assert (be.min_batch, be.max_batch) == (1, 32)
    probs, score = be.infer(np.zeros((0, *SAMPLE), np.float32))
    assert probs.shape == (0, K) and score.shape == (0, 1)
    assert not fakes.kinds("execute")
    with pytest.raises(ValueError, match="per-sample shape"):
        be.infer(np.zeros((2, 5, 5, 3), np.float32))


def test_undeserializable_engine_is_a_model_error(fakes):
    with pytest.raises(ModelError, match="could not deserialize"):
        fakes.load(data=b"bad")


def test_gpu_available_reports_why(fakes, monkeypatch):
    from edge_emotion.runtime.backends.tensorrt import gpu_available

    assert gpu_available() == (True, "ok")
    fakes.cuda.device_count = 0
    ok, why = gpu_available()
    assert not ok and "no NVIDIA GPU" in why
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    ok, why = gpu_available()
    assert not ok and "cuda-python" in why
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    ok, why = gpu_available()
    assert not ok and "TensorRT is not installed" in why


def test_classifier_reads_the_sidecar_and_runs_on_the_engine(fakes):
    from edge_emotion.metadata import ModelMetadata, sidecar_path
    from edge_emotion.runtime.backends.tensorrt import TensorRTBackend
    from edge_emotion.runtime.classifier import EmotionClassifier

    fakes.holder["spec"] = EngineSpec()
    path = fakes.tmp / "model.engine"
    path.write_bytes(b"fake engine")
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    sidecar_path(path).write_text(ModelMetadata(labels=labels, input_size=(H, W), color="rgb", format="engine",
                                                precision="fp16").to_json())
    clf = EmotionClassifier(path)
    assert isinstance(clf.backend, TensorRTBackend) and clf.labels == labels
    x = batch_of(40)
    probs = clf.predict(x)
    ref = reference(x)[0]
    np.testing.assert_allclose(probs, ref / ref.sum(axis=1, keepdims=True), rtol=1e-5)
    clf.backend.close()
    assert len(fakes.cuda.device_freed) == 3
