"""``edge-emotion doctor`` and ``EmotionDetector(backend="fastest")``: what this device is, what it has,
and which backend is fastest on it, measured rather than assumed.

The report has five parts, each a dataclass with ``to_dict()``:

* :class:`Machine`: architecture, OS, Python, CPU model and cores, the CPU features that decide int8
  speed (x86: AVX2, AVX-512F, AVX-512 VNNI, AVX-VNNI, AMX-INT8, AVX-512 BF16; ARM: NEON/ASIMD, the
  dot-product instructions ``asimddp``, I8MM, BF16, FP16 arithmetic), a Jetson if this is one, and
  NVIDIA GPUs if any (``nvidia-smi`` or ``/dev/nvidia*``; their absence is not an error).
* :class:`RuntimeInfo` rows: LiteRT (``ai-edge-litert`` / ``tflite-runtime``), ONNX Runtime with its
  execution providers, TensorRT and cuda-python, Keras and TensorFlow. TensorFlow and Keras are
  found with :func:`importlib.util.find_spec` and versioned with :mod:`importlib.metadata`; neither is
  ever imported here.
* :class:`BundledModel` rows: the models of :mod:`edge_emotion.runtime.zoo` and which artifacts this
  installation has.
* :class:`Measurement`: every artifact of one model (the bundled default unless told) that an
  available backend can run here, timed for a few seconds each: the classifier call
  (:meth:`EmotionClassifier.predict` on a preprocessed batch, the call ``edge-emotion benchmark``
  times) on face crops cut from the bundled ``astronaut.png`` (8 variants: margins, shifts, a mirror,
  brightness), after a warm-up; batch 1 -> p50 ms per face, batch 8 -> p50 of the call / 8.
  Rows that cannot run say why. Keras is skipped unless asked: it imports TensorFlow.
* :class:`Recommendation`: **the row with the lowest batch-1 p50 latency** among the rows that ran,
  Keras rows excluded (the runtime has no TensorFlow); ties go to the row listed first.

``fastest_backend()`` runs the same measurement once per device and model and caches the choice as
JSON in the user's cache directory (:func:`cache_dir`), keyed by a device fingerprint (architecture,
CPU model, features, cores, runtime versions, ONNX Runtime providers, GPUs), the model's SHA-256 and
the thread count. ``EmotionDetector(backend="fastest")`` uses it.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._version import __version__
from .errors import BackendUnavailableError, ModelError
from .formats import BACKEND_PREFERENCE, artifact_key, format_for_path, split_artifact_key

log = logging.getLogger(__name__)

__all__ = [
    "CpuInfo", "Machine", "RuntimeInfo", "BundledModel", "MeasureRow", "Measurement", "Recommendation",
    "DoctorReport", "FastestChoice", "parse_cpuinfo", "machine_info", "runtime_info", "bundled_model_info",
    "device_fingerprint", "model_sha256", "measure_backends", "recommend", "run_doctor", "render_text",
    "cache_dir", "cache_file", "fastest_choice", "fastest_backend", "resolve_fastest",
    "DEFAULT_SECONDS", "FASTEST_SECONDS", "RULE",
]

DEFAULT_SECONDS = 1.5
"""Timed seconds per row for ``edge-emotion doctor`` (plus a short warm-up)."""
FASTEST_SECONDS = 1.0
"""Timed seconds per row when ``backend="fastest"`` measures (once per device and model)."""
RULE = "lowest batch-1 p50 latency per face among the rows that ran (Keras rows excluded); ties: the row listed first"
CACHE_ENV = "EDGE_EMOTION_CACHE_DIR"
CACHE_NAME = "fastest.json"
CACHE_FORMAT = 1
MAX_CACHE_ENTRIES = 64
SAMPLE_IMAGE = Path(__file__).parent / "assets" / "astronaut.png"
SAMPLE_FACE = (173.3, 67.9, 106.6, 106.6)
"""x, y, w, h of the face in ``astronaut.png`` (BlazeFace full-range's box), so measuring needs no face detector."""
BATCH = 8

X86_FEATURES: dict[str, str] = {
    "avx2": "AVX2", "avx512f": "AVX-512F", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8", "avx512_bf16": "AVX-512 BF16",
}
"""x86 ``/proc/cpuinfo`` flags that decide int8 speed -> display name."""
ARM_FEATURES: dict[str, str] = {
    "asimd": "NEON", "asimddp": "dot product", "i8mm": "I8MM", "bf16": "BF16", "fphp": "FP16",
}
"""ARM ``/proc/cpuinfo`` Features that decide int8 speed -> display name (32-bit kernels say ``neon``)."""
ARM_PARTS: dict[tuple[int, int], str] = {
    (0x41, 0xD03): "Cortex-A53", (0x41, 0xD04): "Cortex-A35", (0x41, 0xD05): "Cortex-A55", (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72", (0x41, 0xD09): "Cortex-A73", (0x41, 0xD0A): "Cortex-A75", (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1", (0x41, 0xD0D): "Cortex-A77", (0x41, 0xD40): "Neoverse-V1", (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD42): "Cortex-A78AE", (0x41, 0xD44): "Cortex-X1", (0x41, 0xD46): "Cortex-A510", (0x41, 0xD47): "Cortex-A710",
    (0x41, 0xD48): "Cortex-X2", (0x41, 0xD49): "Neoverse-N2", (0x41, 0xD4B): "Cortex-A78C", (0x41, 0xD4F): "Neoverse-V2",
    (0x41, 0xD80): "Cortex-A520", (0x41, 0xD81): "Cortex-A720", (0x4E, 0x004): "NVIDIA Carmel",
}
"""(CPU implementer, CPU part) -> core name, for ARM ``/proc/cpuinfo`` (which has no model name)."""

# name, import module, edge-emotion backend, distributions that provide it (first found wins)
RUNTIMES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("ai-edge-litert", "ai_edge_litert", "litert", ("ai-edge-litert", "ai-edge-litert-nightly")),
    ("tflite-runtime", "tflite_runtime", "litert", ("tflite-runtime", "tflite_runtime")),
    ("onnxruntime", "onnxruntime", "onnxruntime", ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml",
                                                    "onnxruntime-openvino", "onnxruntime-qnn", "onnxruntime-silicon",
                                                    "ort-nightly", "ort-nightly-gpu")),
    ("tensorrt", "tensorrt", "tensorrt", ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-libs")),
    ("cuda-python", "cuda", "tensorrt", ("cuda-python", "cuda-bindings")),
    ("keras", "keras", "keras", ("keras",)),
    ("tensorflow", "tensorflow", "keras", ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-aarch64",
                                           "tensorflow-intel", "tf-nightly", "tf-nightly-cpu")),
)
_NEVER_IMPORT = {"keras", "tensorflow", "cuda"}  # keras/tensorflow: TensorFlow; cuda: a namespace package


def _jsonable(value: Any) -> Any:
    """Dataclass fields -> JSON: paths as strings, floats rounded to 4 decimals, non-finite as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value


class _Dict:
    """``to_dict()`` for the report's dataclasses."""

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))  # type: ignore[call-overload]


# ------------------------------------------------------------------ the machine
@dataclass
class CpuInfo(_Dict):
    """What ``/proc/cpuinfo`` (or sysctl on macOS) says about the CPU."""

    family: str | None
    """``x86``, ``arm`` or None (unknown)."""
    model: str
    features: dict[str, bool]
    """The int8-relevant features of :data:`X86_FEATURES` or :data:`ARM_FEATURES`: present or not."""
    board: str | None = None
    """The ``Model`` line Raspberry Pi kernels add (e.g. ``Raspberry Pi 4 Model B Rev 1.4``)."""


def _int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse a Linux ``/proc/cpuinfo``: the CPU model and which int8-relevant features it has.

    x86 kernels list ``flags``; ARM kernels list ``Features`` (64-bit: ``asimd``; 32-bit: ``neon``) and,
    instead of a model name, an implementer and part number per core, named here from :data:`ARM_PARTS`
    (big.LITTLE chips list each kind: ``4x Cortex-A76 + 4x Cortex-A55``).
    """
    blocks: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            cur.setdefault(key.strip().lower(), value.strip())
    if cur:
        blocks.append(cur)
    merged: dict[str, str] = {}
    for b in blocks:
        for k, v in b.items():
            merged.setdefault(k, v)
    board = merged.get("model") if not (merged.get("model") or "x").isdigit() else None  # x86 "model" is a number
    if "flags" in merged:
        flags = set(merged["flags"].split())
        return CpuInfo("x86", merged.get("model name", "unknown x86 CPU"),
                       {k: k in flags for k in X86_FEATURES}, board)
    if "features" in merged:
        flags = set(merged["features"].split())
        if "neon" in flags:
            flags.add("asimd")
        counts: dict[str, int] = {}
        for b in blocks:
            impl, part = _int(b.get("cpu implementer", "")), _int(b.get("cpu part", ""))
            if part is None:
                continue
            name = ARM_PARTS.get((impl or 0, part), f"ARM part {part:#x}")
            counts[name] = counts.get(name, 0) + 1
        if counts:
            model = " + ".join(f"{n}x {name}" if len(counts) > 1 else name for name, n in counts.items())
        else:
            model = merged.get("model name") or merged.get("hardware") or "unknown ARM CPU"
        return CpuInfo("arm", model, {k: k in flags for k in ARM_FEATURES}, board)
    return CpuInfo(None, merged.get("model name") or platform.processor() or "unknown", {}, board)


def _macos_cpu() -> CpuInfo:
    """Best effort on macOS: ``sysctl`` names the CPU and its features."""
    try:
        out = subprocess.run(["sysctl", "machdep.cpu", "hw.optional"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return CpuInfo(None, platform.processor() or "unknown", {})
    kv = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        kv[k.strip()] = v.strip()
    model = kv.get("machdep.cpu.brand_string", platform.processor() or "unknown")
    if platform.machine() in ("arm64", "aarch64"):
        sysctl = {"asimd": "hw.optional.AdvSIMD", "asimddp": "hw.optional.arm.FEAT_DotProd", "i8mm": "hw.optional.arm.FEAT_I8MM",
                  "bf16": "hw.optional.arm.FEAT_BF16", "fphp": "hw.optional.arm.FEAT_FP16"}
        return CpuInfo("arm", model, {k: kv.get(v) == "1" for k, v in sysctl.items()})
    leaf = " ".join(kv.get(k, "") for k in ("machdep.cpu.features", "machdep.cpu.leaf7_features")).upper()
    names = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_vnni": "AVX512VNNI", "avx_vnni": "AVXVNNI",
             "amx_int8": "AMXINT8", "avx512_bf16": "AVX512BF16"}
    return CpuInfo("x86", model, {k: v in leaf.split() for k, v in names.items()})


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


@lru_cache(maxsize=1)
def _cpu() -> CpuInfo:
    if sys.platform == "darwin":
        return _macos_cpu()
    text = _read("/proc/cpuinfo")
    if text is None:
        return CpuInfo(None, platform.processor() or "unknown", {})
    return parse_cpuinfo(text)


def int8_note(cpu: CpuInfo) -> str:
    """What the CPU's features mean for int8 models, in one sentence."""
    f = cpu.features
    if not f:
        return "CPU features unknown on this OS: the measurement decides"
    if cpu.family == "x86":
        if f.get("amx_int8"):
            return "AMX-INT8 and VNNI: int8 matrix multiplies in hardware; int8 should be fastest"
        if f.get("avx512_vnni") or f.get("avx_vnni"):
            return "VNNI: int8 dot products in one instruction; int8 should be fastest"
        if f.get("avx2"):
            return ("AVX2 without VNNI: int8 multiplies go through 16-bit intermediates (ONNX int8 uses reduce_range "
                    "for that); int8 gains are smaller: the measurement decides")
        return "no AVX2: int8 kernels are slow here; the measurement decides"
    if cpu.family == "arm":
        if f.get("i8mm"):
            return "dot product and I8MM: int8 matrix multiplies in hardware; int8 should be fastest"
        if f.get("asimddp"):
            return "NEON with dot product (SDOT/UDOT): int8 should be fastest"
        if f.get("asimd"):
            return ("NEON without dot product (e.g. Cortex-A72 in a Raspberry Pi 4, Cortex-A57 in a Jetson Nano): "
                    "int8 kernels widen to 16 bits and can be slower than fp32: the measurement decides")
        return "no NEON: expect slow inference"
    return "CPU features unknown: the measurement decides"


@dataclass
class Machine(_Dict):
    """This device: the facts that decide which backend and precision run fastest."""

    arch: str
    os: str
    python: str
    cpu_model: str
    board: str | None
    cores: int | None
    usable_cores: int | None
    cpu_family: str | None
    cpu_features: dict[str, bool]
    """int8-relevant CPU features (keys as in ``/proc/cpuinfo``) -> present."""
    int8_note: str
    jetson: str | None
    """L4T release and board of an NVIDIA Jetson, else None."""
    gpus: list[str]
    gpu_note: str


def _jetson() -> str | None:
    rel = _read("/etc/nv_tegra_release")
    if rel is None:
        return None
    first = rel.splitlines()[0] if rel else ""
    m = re.search(r"R(\d+)\b.*?REVISION:\s*([\d.]+)", first)  # "# R35 (release), REVISION: 4.1, GCID: ..."
    version = f"L4T R{m.group(1)}.{m.group(2)}" if m else (first.lstrip("# ") or "L4T")
    model = _read("/proc/device-tree/model")
    return f"{model} ({version})" if model else version


@lru_cache(maxsize=1)
def _gpus() -> tuple[tuple[str, ...], str]:
    """NVIDIA GPUs from ``nvidia-smi`` when on PATH, else from ``/dev/nvidia*``; (names, how it was found)."""
    nodes = sorted(glob.glob("/dev/nvidia[0-9]*"))
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            r = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=10)
            lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
            if r.returncode == 0 and lines:
                return tuple(lines), "nvidia-smi"
            log.debug("nvidia-smi failed (%s): %s", r.returncode, r.stderr.strip())
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("nvidia-smi did not run: %s", exc)
    if nodes:
        return (f"NVIDIA GPU ({len(nodes)} device node{'s' if len(nodes) > 1 else ''}: {', '.join(nodes)})",), "/dev/nvidia*"
    if os.path.exists("/dev/nvhost-gpu") or os.path.exists("/dev/nvgpu"):
        return ("integrated NVIDIA GPU (Jetson)",), "/dev/nvhost-gpu"
    return (), "no NVIDIA GPU found (no nvidia-smi, no /dev/nvidia*)"


def machine_info() -> Machine:
    """Describe this machine (reads ``/proc/cpuinfo``; runs ``nvidia-smi`` only when it is on PATH)."""
    cpu = _cpu()
    board = cpu.board or _read("/proc/device-tree/model")
    try:
        usable = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        usable = os.cpu_count()
    gpus, how = _gpus()
    return Machine(arch=platform.machine(), os=platform.platform(terse=True),
                   python=f"{platform.python_implementation()} {platform.python_version()}", cpu_model=cpu.model,
                   board=board or None, cores=os.cpu_count(), usable_cores=usable, cpu_family=cpu.family,
                   cpu_features=dict(cpu.features), int8_note=int8_note(cpu), jetson=_jetson(), gpus=list(gpus), gpu_note=how)


# ------------------------------------------------------------------ runtimes
@dataclass
class RuntimeInfo(_Dict):
    """One inference runtime (or a library a backend needs) and whether it is installed."""

    name: str
    module: str
    backend: str
    installed: bool
    version: str | None = None
    distribution: str | None = None
    providers: list[str] | None = None
    """ONNX Runtime's execution providers (CPU, CUDA, TensorRT, ...)."""
    note: str = ""


def _dist_version(dists: tuple[str, ...]) -> tuple[str | None, str | None]:
    for d in dists:
        try:
            return d, importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def _find_spec(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=1)
def _ort_providers() -> tuple[str, ...]:
    try:
        import onnxruntime as ort

        return tuple(ort.get_available_providers())
    except Exception as exc:  # noqa: BLE001 - a broken install must not break the doctor
        log.debug("onnxruntime does not import: %s", exc)
        return ()


def runtime_info() -> list[RuntimeInfo]:
    """Every runtime edge-emotion can use, with versions. Imports ONNX Runtime (for its providers) and, when
    installed, TensorRT; never Keras or TensorFlow."""
    out = []
    for name, module, backend, dists in RUNTIMES:
        if not _find_spec(module):
            out.append(RuntimeInfo(name, module, backend, False))
            continue
        dist, version = _dist_version(dists)
        info = RuntimeInfo(name, module, backend, True, version, dist)
        if module == "onnxruntime":
            info.providers = list(_ort_providers())
            if not info.providers:
                info.note = "installed but does not import"
        elif module == "tensorrt" and version is None:  # Jetson: TensorRT from apt, often without dist metadata
            try:
                import tensorrt

                info.version = getattr(tensorrt, "__version__", None)
            except Exception as exc:  # noqa: BLE001
                info.note = f"installed but does not import: {exc}"
        elif module in ("keras", "tensorflow"):
            info.note = "training extra: found, not imported"
        out.append(info)
    return out


# ------------------------------------------------------------------ bundled models
@dataclass
class BundledModel(_Dict):
    """A bundled model and which of its artifacts this installation has."""

    name: str
    default: bool
    label_set: str | None
    reference: bool
    artifacts: dict[str, str | None]
    """Artifact key (``tflite_int8``, ``keras``, ...) -> its path here, or None when not installed."""


def bundled_model_info() -> list[BundledModel]:
    """The models of :mod:`edge_emotion.runtime.zoo`."""
    from .runtime.zoo import artifacts, bundled_models, load_index

    index = load_index()
    out = []
    for name in bundled_models():
        entry = index["models"][name]
        out.append(BundledModel(name, name == index.get("default"), entry.get("label_set"), bool(entry.get("reference")),
                                {k: (str(p) if p else None) for k, p in artifacts(name).items()}))
    return out


# ------------------------------------------------------------------ measurement
@dataclass
class MeasureRow(_Dict):
    """One artifact on one backend, timed; or why it was not."""

    backend: str
    """``litert``, ``onnxruntime``, ``onnxruntime-gpu`` (ONNX Runtime with CUDA), ``tensorrt`` or ``keras``."""
    artifact: str
    """Artifact key of a bundled model (``tflite_int8``) or the file name of a model file."""
    path: str | None
    status: str
    """``ok``, ``skipped: WHY`` or ``failed: WHY``."""
    providers: list[str] | None = None
    runtime: str | None = None
    threads: int | None = None
    load_ms: float | None = None
    p50_ms_b1: float | None = None
    """Median wall time of one batch-1 call, in ms: latency per face."""
    p95_ms_b1: float | None = None
    per_face_ms_b8: float | None = None
    """Median wall time of one batch-8 call / 8, in ms."""
    calls_b1: int = 0
    calls_b8: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Measurement(_Dict):
    """Every candidate of one model, measured the same way on the same crops."""

    model: str
    model_sha256: str
    seconds: float
    """Timed seconds per row (batch 1 gets two thirds, batch 8 one third), after a warm-up."""
    threads: int | None
    input: str
    method: str
    rows: list[MeasureRow] = field(default_factory=list)


@dataclass
class _Candidate:
    backend: str
    artifact: str
    path: Path | None
    providers: list[str] | None = None
    skip: str | None = None
    bundled: str | None = None  # model name: the path is verified against the index before loading

    def runtime_backend(self) -> str:
        return "onnxruntime" if self.backend == "onnxruntime-gpu" else self.backend


GPU_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _is_path(model: str | Path | None) -> bool:
    """The test :func:`edge_emotion.runtime.zoo.resolve_model` uses: a suffix or an existing path means a file."""
    return model is not None and bool(Path(model).suffix or Path(model).exists())


def _model_name(model: str | Path | None) -> str:
    from .runtime.zoo import bundled_models, load_index

    name = str(model) if model is not None else load_index().get("default")
    if not name:
        raise ModelError("no bundled default model in this installation; pass a model name or file")
    if name not in load_index()["models"]:
        raise ModelError(f"unknown model {name!r}: not a file and not a bundled model ({', '.join(bundled_models()) or 'none'})")
    return name


def _litert_module() -> str | None:
    from .formats import format_by_name

    return next((m for m in format_by_name("tflite").runtime_modules if _find_spec(m.split(".")[0])), None)


def _candidates(model: str | Path | None, include_keras: bool) -> tuple[str, list[_Candidate]]:
    """(model label, every row to measure or to report as skipped)."""
    from .runtime.backends import available_backends

    avail = available_backends()
    providers = _ort_providers() if avail.get("onnxruntime") == "ok" else ()
    has_cuda = "CUDAExecutionProvider" in providers
    no_cuda = ("no CUDA execution provider in ONNX Runtime (providers: " + (", ".join(providers) or "none")
               + "); pip install onnxruntime-gpu on a machine with an NVIDIA GPU")
    keras_skip = "not measured by default: the Keras backend imports TensorFlow (pass --keras / include_keras=True)"
    tflite_tf_only = ("only TensorFlow's TFLite interpreter is installed and it imports TensorFlow: "
                      "pip install ai-edge-litert (or pass --keras to measure it anyway)")

    def gate(backend: str) -> str | None:
        runtime = "onnxruntime" if backend == "onnxruntime-gpu" else backend
        if avail.get(runtime) != "ok":
            return avail.get(runtime, "unknown backend")
        if backend == "onnxruntime-gpu" and not has_cuda:
            return no_cuda
        if backend == "keras" and not include_keras:
            return keras_skip
        if backend == "litert" and _litert_module() == "tensorflow.lite" and not include_keras:
            return tflite_tf_only
        return None

    out: list[_Candidate] = []
    if _is_path(model):
        path = Path(model)  # type: ignore[arg-type]
        fmt = format_for_path(path)
        backends = [fmt.backend] + (["onnxruntime-gpu"] if fmt.name == "onnx" and has_cuda else [])
        for b in backends:
            if b is None:
                continue
            out.append(_Candidate(b, path.name, path, GPU_PROVIDERS if b == "onnxruntime-gpu" else None, gate(b)))
        return str(path), out

    from .runtime.zoo import artifacts

    name = _model_name(model)
    arts = artifacts(name)
    for b in ("litert", "onnxruntime", "onnxruntime-gpu"):
        keys = [k for k in (artifact_key(*fp) for fp in BACKEND_PREFERENCE[b]) if k in arts]
        if b == "onnxruntime-gpu" and not has_cuda:
            if avail.get("onnxruntime") == "ok":
                out.append(_Candidate(b, "onnx_*", None, GPU_PROVIDERS, no_cuda))
            continue
        for key in keys:
            path = arts[key]
            skip = gate(b) or (None if path else f"not installed here (it lives in the repository's zoo/{name}/)")
            out.append(_Candidate(b, key, path, GPU_PROVIDERS if b == "onnxruntime-gpu" else None, skip, name))
    trt = gate("tensorrt")
    keras_src = arts.get("keras")
    out.append(_Candidate("tensorrt", "engine", None, None, trt or (
        "bundled models carry no .engine (an engine is built for one GPU and TensorRT version): build one with "
        f"`edge-emotion export {keras_src or 'MODEL.keras'} --format engine`, "
        "then `edge-emotion doctor --model MODEL.engine`")))
    if "keras" in arts:
        out.append(_Candidate("keras", "keras", arts["keras"], None,
                              gate("keras") or (None if arts["keras"] else "not installed here (repository only)"), name))
    else:
        out.append(_Candidate("keras", "keras", None, None, gate("keras") or f"model {name!r} is published without its .keras"))
    return name, out


@lru_cache(maxsize=4)
def _face_crops(h: int, w: int, n: int = BATCH) -> tuple[np.ndarray, ...]:
    """``n`` real-looking BGR face crops at (h, w): the sample image's face with other margins, shifts,
    a mirror and brightness changes (no dataset needed)."""
    import cv2

    from .runtime.crop import crop_face

    frame = cv2.imread(str(SAMPLE_IMAGE))
    if frame is None:
        log.warning("cannot read %s: measuring on noise instead of a face", SAMPLE_IMAGE)
        rng = np.random.default_rng(0)
        return tuple(rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(n))
    x, y, bw, bh = SAMPLE_FACE
    variants = [  # margin, x shift, y shift (box sizes), mirror, brightness gain
        (0.15, 0, 0, False, 1.0), (0.25, 0, 0, False, 1.0), (0.15, 0.05, 0, True, 1.0), (0.10, -0.05, 0.03, False, 0.8),
        (0.20, 0, -0.04, False, 1.2), (0.15, 0.03, 0.03, True, 0.9), (0.30, -0.03, 0, False, 1.1), (0.15, 0, 0.05, True, 1.0)]
    out = []
    for i in range(n):
        margin, dx, dy, flip, gain = variants[i % len(variants)]
        c = crop_face(frame, (x + dx * bw, y + dy * bh, bw, bh), (h, w), margin)
        if flip:
            c = c[:, ::-1]
        if gain != 1.0:
            c = np.clip(c.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        out.append(np.ascontiguousarray(c))
    return tuple(out)


ROUNDS = 3
"""Rows are timed in this many interleaved rounds (rotating order), so load that drifts over the few
seconds of a measurement (a background job, thermal throttling) falls on every row alike."""


def _timed(fn: Callable[[], Any], seconds: float, min_calls: int = 2) -> list[float]:
    """Warm up (at least 2 calls and a tenth of the budget), then time calls for ``seconds`` (at least ``min_calls``)."""
    stop = time.perf_counter() + 0.1 * seconds
    n = 0
    while n < 2 or time.perf_counter() < stop:
        fn()
        n += 1
    ts: list[float] = []
    stop = time.perf_counter() + seconds
    while len(ts) < min_calls or (time.perf_counter() < stop and len(ts) < 1_000_000):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts


def _fail(row: MeasureRow, exc: BaseException) -> None:
    msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    row.status = f"failed: {msg}"
    log.debug("measuring %s %s failed", row.backend, row.artifact, exc_info=True)


def _load(c: _Candidate, threads: int | None) -> tuple[MeasureRow, Any, np.ndarray | None]:
    """(row, classifier, preprocessed batch of face crops); the classifier is None when the row cannot run."""
    from .runtime.classifier import EmotionClassifier
    from .runtime.zoo import artifact_path

    row = MeasureRow(c.backend, c.artifact, str(c.path) if c.path else None, "ok", c.providers)
    if c.skip:
        row.status = f"skipped: {c.skip}"
        return row, None, None
    try:
        path = artifact_path(c.bundled, c.artifact) if c.bundled else c.path
        t = time.perf_counter()
        clf = EmotionClassifier(path, c.runtime_backend(), threads=threads, providers=c.providers)
        row.load_ms = (time.perf_counter() - t) * 1000
        if c.backend == "onnxruntime-gpu" and clf.backend.providers[0] != "CUDAExecutionProvider":  # type: ignore[attr-defined]
            raise BackendUnavailableError("the CUDA execution provider did not start "  # type: ignore[attr-defined]
                                          f"(the session runs on {clf.backend.providers[0]})")
        row.runtime = clf.backend.version()
        row.threads = getattr(clf.backend, "threads", threads)
        batch = clf.preprocess(list(_face_crops(*clf.meta.input_size)))
        if not np.isfinite(clf.predict(batch)).all():
            raise ModelError("the model's outputs are not finite")
        return row, clf, batch
    except Exception as exc:  # noqa: BLE001 - one row failing must not stop the doctor
        _fail(row, exc)
        return row, None, None


def measure_backends(model: str | Path | None = None, seconds: float = DEFAULT_SECONDS, threads: int | None = None,
                     include_keras: bool = False) -> Measurement:
    """Time every artifact of ``model`` (default: the bundled default model; a bundled name; or a model file)
    that an available backend runs here.

    Every runnable row is loaded, then timed for ``seconds`` in total, in :data:`ROUNDS` interleaved rounds:
    two thirds of each slice at batch 1 (p50 and p95 ms per face), one third at batch 8 (p50 of the call / 8),
    each after a short warm-up. Keras rows need ``include_keras`` because the Keras backend imports TensorFlow."""
    from .timing import percentile_ms  # the benchmark's statistic, so both report the same way

    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    label, cands = _candidates(model, include_keras)
    m = Measurement(label, model_sha256(model), seconds, threads,
                    f"{SAMPLE_IMAGE.name}: its face cut {BATCH} ways (margins, shifts, mirror, brightness)",
                    "EmotionClassifier.predict on a preprocessed batch (the call `edge-emotion benchmark` times), wall time "
                    f"after a warm-up, rows interleaved in {ROUNDS} rounds; batch 1: p50/p95 ms per face; "
                    "batch 8: p50 of the call / 8")
    loaded = [_load(c, threads) for c in cands]
    live = [(row, clf, batch) for row, clf, batch in loaded if clf is not None]
    log.info("measuring %d backend row%s of %s for %.1f s each", len(live), "" if len(live) == 1 else "s", label, seconds)
    times: dict[int, tuple[list[float], list[float]]] = {id(row): ([], []) for row, _, _ in live}
    for rnd in range(ROUNDS):
        for row, clf, batch in live[rnd % max(len(live), 1):] + live[: rnd % max(len(live), 1)]:
            if not row.ok:
                continue
            try:
                t1, t8 = times[id(row)]
                t1 += _timed(lambda: clf.predict(batch[:1]), seconds * 2 / 3 / ROUNDS)
                t8 += _timed(lambda: clf.predict(batch), seconds / 3 / ROUNDS)
            except Exception as exc:  # noqa: BLE001
                _fail(row, exc)
    for row, clf, batch in live:
        t1, t8 = times[id(row)]
        if row.ok:
            row.p50_ms_b1, row.p95_ms_b1 = percentile_ms(t1, 50), percentile_ms(t1, 95)
            row.per_face_ms_b8 = percentile_ms(t8, 50) / len(batch)
            row.calls_b1, row.calls_b8 = len(t1), len(t8)
        close = getattr(clf.backend, "close", None)
        if callable(close):
            close()
    live.clear()
    for row, _, _ in loaded:
        if row.ok:
            log.info("  %-16s %-12s %7.3f ms/face (batch 1, p50), %7.3f ms/face (batch 8)", row.backend, row.artifact,
                     row.p50_ms_b1, row.per_face_ms_b8)
        else:
            log.info("  %-16s %-12s %s", row.backend, row.artifact, row.status)
        m.rows.append(row)
    return m


@dataclass
class Recommendation(_Dict):
    """The backend and artifact to use on this device, by :data:`RULE`."""

    backend: str
    artifact: str
    path: str | None
    providers: list[str] | None
    p50_ms_b1: float
    per_face_ms_b8: float | None
    rule: str = RULE
    runner_up: str | None = None
    """``backend artifact`` of the next-fastest row, if any."""
    speedup_vs_runner_up: float | None = None
    auto_choice: str | None = None
    """What ``backend="auto"`` would load for this model, for comparison."""
    note: str = ""


def recommend(rows: list[MeasureRow]) -> Recommendation | None:
    """The row with the lowest batch-1 p50 among the rows that ran, Keras excluded (ties: first listed); None if none ran."""
    ok = [r for r in rows if r.ok and r.backend != "keras" and r.p50_ms_b1 is not None and math.isfinite(r.p50_ms_b1)]
    if not ok:
        return None
    ranked = sorted(ok, key=lambda r: r.p50_ms_b1)  # stable: ties keep table order
    best = ranked[0]
    rec = Recommendation(best.backend, best.artifact, best.path, best.providers, best.p50_ms_b1, best.per_face_ms_b8)
    if len(ranked) > 1:
        nxt = ranked[1]
        rec.runner_up = f"{nxt.backend} {nxt.artifact}"
        rec.speedup_vs_runner_up = nxt.p50_ms_b1 / best.p50_ms_b1 if best.p50_ms_b1 > 0 else None
        if rec.speedup_vs_runner_up is not None and rec.speedup_vs_runner_up < 1.05:
            rec.note = f"within 5% of {rec.runner_up}: a tie within measurement noise"
    return rec


# ------------------------------------------------------------------ device fingerprint, model digest, cache
def int8_class(cpu: CpuInfo | None = None) -> str:
    """The class of int8 kernels this CPU runs: ``x86-amx``, ``x86-vnni``, ``x86-avx2``, ``arm-i8mm``,
    ``arm-dotprod``, ``arm-neon`` or ``<family>-other``. Two machines of one class compute identical
    int8 results with the same runtime versions; across classes rounding differs slightly."""
    cpu = cpu or _cpu()
    f = cpu.features
    order = {"x86": [("amx_int8", "amx"), ("avx512_vnni", "vnni"), ("avx_vnni", "vnni"), ("avx2", "avx2")],
             "arm": [("i8mm", "i8mm"), ("asimddp", "dotprod"), ("asimd", "neon")]}.get(cpu.family or "", [])
    return f"{cpu.family or 'unknown'}-" + next((name for feat, name in order if f.get(feat)), "other")


def runtime_versions() -> dict[str, str]:
    """Installed inference runtimes (LiteRT, ONNX Runtime, TensorRT) -> ``distribution version``."""
    out = {}
    for name, module, backend, dists in RUNTIMES:
        if backend == "keras" or not _find_spec(module):
            continue
        dist, version = _dist_version(dists)
        out[name] = f"{dist} {version}" if dist else "installed"
    return out


def device_fingerprint() -> dict:
    """What makes a latency measurement valid on this device only: architecture, OS, CPU model, int8
    features, cores, runtime versions, ONNX Runtime providers and GPUs (never TensorFlow/Keras)."""
    cpu = _cpu()
    runtimes = runtime_versions()
    return {
        "arch": platform.machine(), "system": platform.system(), "cpu": cpu.model,
        "cpu_features": sorted(k for k, v in cpu.features.items() if v), "cores": os.cpu_count(),
        "runtimes": runtimes, "providers": sorted(_ort_providers()) if "onnxruntime" in runtimes else [],
        "gpus": list(_gpus()[0]),
    }


def model_sha256(model: str | Path | None = None) -> str:
    """SHA-256 of a model file; for a bundled model, of its installed artifacts' recorded SHA-256s (so installing
    another artifact or updating the model re-measures)."""
    if _is_path(model):
        from .metadata import sha256_file

        return sha256_file(model)  # type: ignore[arg-type]
    from .runtime.zoo import artifacts, load_index

    name = _model_name(model)
    entry = load_index()["models"][name]
    installed = artifacts(name)
    lines = sorted(f"{k}:{a['sha256']}" for k, a in entry["artifacts"].items() if installed.get(k))
    return hashlib.sha256("\n".join([name, *lines]).encode()).hexdigest()


def cache_dir() -> Path:
    """The user's cache folder for edge-emotion: ``$EDGE_EMOTION_CACHE_DIR`` if set, else
    ``$XDG_CACHE_HOME/edge-emotion`` or ``~/.cache/edge-emotion`` (Linux and others),
    ``~/Library/Caches/edge-emotion`` (macOS), ``%LOCALAPPDATA%\\edge-emotion`` (Windows)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "edge-emotion"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "edge-emotion"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "edge-emotion"


def cache_file() -> Path:
    """The JSON file that holds the ``fastest`` choices, one entry per device, model and thread count."""
    return cache_dir() / CACHE_NAME


def _cache_key(fingerprint: dict, model: str, sha: str, threads: int | None) -> str:
    blob = json.dumps({"device": fingerprint, "model": model, "model_sha256": sha, "threads": threads}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _load_cache(path: Path) -> dict:
    """The cache's entries; {} when absent, and (with a log line) when unreadable or corrupt."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("fastest-backend cache %s is unreadable (%s): ignoring it", path, exc)
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
            raise ValueError("not an edge-emotion fastest-backend cache")
        return data["entries"]
    except ValueError as exc:
        log.warning("fastest-backend cache %s is corrupt (%s): ignoring it; it will be rewritten", path, exc)
        return {}


def _save_cache(path: Path, key: str, entry: dict) -> bool:
    """Add ``entry`` to the cache file atomically (other devices' entries kept); False, with a warning, if unwritable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = _load_cache(path) if path.exists() else {}
        entries[key] = entry
        if len(entries) > MAX_CACHE_ENTRIES:  # keep the newest
            entries = dict(sorted(entries.items(), key=lambda kv: str(kv[1].get("measured_at", "")))[-MAX_CACHE_ENTRIES:])
        fd, tmp = tempfile.mkstemp(prefix=".fastest.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"format": CACHE_FORMAT, "entries": entries}, f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True
    except OSError as exc:
        log.warning("cannot write the fastest-backend cache %s (%s): the choice holds for this process only; "
                    "set %s to a writable folder", path, exc, CACHE_ENV)
        return False


@dataclass
class FastestChoice(_Dict):
    """What ``backend="fastest"`` runs: a backend, an artifact and (for ONNX Runtime on a GPU) providers."""

    backend: str
    """Row backend: ``litert``, ``onnxruntime``, ``onnxruntime-gpu`` or ``tensorrt``."""
    artifact: str
    path: Path
    providers: list[str] | None
    p50_ms_b1: float | None
    measured_at: str
    cached: bool
    """True when read from the cache rather than measured now."""

    @property
    def runtime_backend(self) -> str:
        """The name :func:`edge_emotion.runtime.backends.load_backend` takes."""
        return "onnxruntime" if self.backend == "onnxruntime-gpu" else self.backend


_MEMO: dict[str, FastestChoice] = {}  # per process: an unwritable cache still measures only once


def _entry_to_choice(name: str, entry: dict, cached: bool) -> FastestChoice:
    from .runtime.zoo import artifact_path

    fmt, prec = split_artifact_key(str(entry["artifact"]))
    if (fmt, prec) not in BACKEND_PREFERENCE.get(entry["backend"], ()):
        raise KeyError(f"{entry['backend']} does not run {entry['artifact']}")
    return FastestChoice(entry["backend"], entry["artifact"], artifact_path(name, entry["artifact"]), entry.get("providers"),
                         entry.get("p50_ms_b1"), entry.get("measured_at", ""), cached)


def _choice_entry(name: str, sha: str, fp: dict, threads: int | None, m: Measurement, rec: Recommendation) -> dict:
    return {"model": name, "model_sha256": sha, "threads": threads, "device": fp, "backend": rec.backend,
            "artifact": rec.artifact, "providers": rec.providers, "p50_ms_b1": rec.p50_ms_b1,
            "per_face_ms_b8": rec.per_face_ms_b8, "rule": RULE, "seconds": m.seconds,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "edge_emotion": __version__,
            "rows": [{"backend": r.backend, "artifact": r.artifact, "p50_ms_b1": r.p50_ms_b1, "status": r.status}
                     for r in m.rows]}


def fastest_choice(model: str | None = None, refresh: bool = False, threads: int | None = None,
                   seconds: float = FASTEST_SECONDS) -> FastestChoice:
    """The fastest backend and artifact of bundled ``model`` (default: the bundled default) on this device.

    Measured once (:func:`measure_backends`, ``seconds`` per row, rule :data:`RULE`) and cached in
    :func:`cache_file` under a key made of :func:`device_fingerprint`, :func:`model_sha256` and ``threads``;
    later calls, in this and other processes, read the cache. ``refresh`` measures again. A corrupt or
    unreadable cache is ignored (logged) and rewritten; an unwritable one is logged and the choice kept
    for this process.
    """
    if _is_path(model):
        raise ModelError(f"{model}: backend='fastest' chooses among the artifacts of a bundled model; a model file runs "
                         "on the one backend its format names (use backend='auto')")
    name = _model_name(model)
    sha = model_sha256(name)
    fp = device_fingerprint()
    key = _cache_key(fp, name, sha, threads)
    path = cache_file()
    if not refresh:
        hit = _MEMO.get(key)
        entry = None if hit else _load_cache(path).get(key)
        if hit is None and entry is not None:
            try:
                hit = _entry_to_choice(name, entry, cached=True)
            except (KeyError, TypeError, ModelError) as exc:
                log.warning("fastest-backend cache entry for %s in %s is unusable (%s): measuring again", name, path, exc)
        if hit is not None:
            _MEMO[key] = hit
            log.info("fastest backend for %s: %s %s (%s ms/face, cached %s in %s)", name, hit.backend, hit.artifact,
                     f"{hit.p50_ms_b1:.3f}" if hit.p50_ms_b1 is not None else "?", hit.measured_at, path)
            return hit
    log.info("fastest backend for %s: measuring each backend on this device once (%.1f s per row)", name, seconds)
    m = measure_backends(name, seconds=seconds, threads=threads)
    rec = recommend(m.rows)
    if rec is None:
        raise BackendUnavailableError(f"backend='fastest': no backend can run model {name!r} here: "
                                      + "; ".join(f"{r.backend} {r.artifact}: {r.status}" for r in m.rows))
    entry = _choice_entry(name, sha, fp, threads, m, rec)
    choice = _entry_to_choice(name, entry, cached=False)
    _MEMO[key] = choice
    saved = _save_cache(path, key, entry)
    log.info("fastest backend for %s: chose %s %s (%.3f ms/face at batch 1, p50%s)%s", name, rec.backend, rec.artifact,
             rec.p50_ms_b1, f"; runner-up {rec.runner_up}" if rec.runner_up else "",
             f"; cached in {path}" if saved else "")
    return choice


def fastest_backend(model: str | None = None, refresh: bool = False, threads: int | None = None) -> tuple[str, Path]:
    """(backend, artifact path) of the fastest way to run bundled ``model`` on this device; see :func:`fastest_choice`.

    The backend is a row name: ``onnxruntime-gpu`` means ONNX Runtime with
    ``["CUDAExecutionProvider", "CPUExecutionProvider"]``."""
    c = fastest_choice(model, refresh=refresh, threads=threads)
    return c.backend, c.path


def resolve_fastest(model: str | Path | None, threads: int | None = None,
                    providers: list | None = None) -> tuple[str, Path, list | None]:
    """What ``EmotionDetector(backend="fastest")`` loads: (backend for ``load_backend``, path, providers).

    ``model`` None or a bundled name: :func:`fastest_choice` (the caller's ``providers`` win over the
    measured ones). A model **file**: falls back to ``auto`` with a log line, since a file's format
    names the one backend that runs it."""
    if _is_path(model):
        log.info("backend='fastest' with a model file (%s): using backend 'auto'; a file runs on the one backend "
                 "its format names (pass a bundled model name to choose among artifacts)", model)
        return "auto", Path(model), providers  # type: ignore[arg-type]
    c = fastest_choice(None if model is None else str(model), threads=threads)
    return c.runtime_backend, c.path, providers or c.providers


# ------------------------------------------------------------------ the report
@dataclass
class DoctorReport(_Dict):
    """Everything ``edge-emotion doctor`` prints."""

    edge_emotion: str
    machine: Machine
    runtimes: list[RuntimeInfo]
    backends: dict[str, str]
    """:func:`edge_emotion.runtime.backends.available_backends`: backend -> ``ok`` or why not."""
    models: list[BundledModel]
    measurement: Measurement
    recommendation: Recommendation | None
    fastest_cache: dict
    """The ``backend="fastest"`` cache: its file, and this device's entry for the measured model, if any."""


def run_doctor(model: str | Path | None = None, seconds: float = DEFAULT_SECONDS, threads: int | None = None,
               include_keras: bool = False, refresh: bool = False) -> DoctorReport:
    """Build the full report: machine, runtimes, bundled models, a measurement and a recommendation.
    With ``refresh`` (bundled models only), store the recommendation as the cached ``backend="fastest"`` choice."""
    from .runtime.backends import available_backends
    from .runtime.zoo import resolve_model

    machine, runtimes, backends = machine_info(), runtime_info(), available_backends()
    models = bundled_model_info()
    m = measure_backends(model, seconds=seconds, threads=threads, include_keras=include_keras)
    rec = recommend(m.rows)
    cache: dict = {"file": str(cache_file()), "entry": None}
    if rec is not None and not _is_path(model):
        try:
            rec.auto_choice = resolve_model(m.model, "auto").name
        except Exception as exc:  # noqa: BLE001
            rec.auto_choice = f"none: {exc}"
        name = m.model
        fp = device_fingerprint()
        key = _cache_key(fp, name, m.model_sha256, threads)
        if refresh:
            entry = _choice_entry(name, m.model_sha256, fp, threads, m, rec)
            cache["stored"] = _save_cache(cache_file(), key, entry)
            _MEMO.pop(key, None)
        cache["entry"] = _load_cache(cache_file()).get(key)
        if cache["entry"] is not None:
            cache["entry"] = {k: v for k, v in cache["entry"].items() if k not in ("device", "rows")}
    elif _is_path(model):
        cache["note"] = "backend='fastest' chooses among a bundled model's artifacts; a model file runs on its own backend"
    return DoctorReport(__version__, machine, runtimes, backends, models, m, rec, cache)


def _ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def render_text(r: DoctorReport) -> str:
    """The report as a few short sections and one table."""
    mc = r.machine
    out = [f"edge-emotion {r.edge_emotion} doctor", "", "Machine"]
    out.append(f"  {mc.arch}, {mc.os}, {mc.python}")
    cores = f"{mc.cores} cores" + (f" ({mc.usable_cores} usable)" if mc.usable_cores and mc.usable_cores != mc.cores else "")
    out.append(f"  CPU    {mc.cpu_model}, {cores}" + (f"; board {mc.board}" if mc.board else ""))
    names = X86_FEATURES if mc.cpu_family == "x86" else ARM_FEATURES
    if mc.cpu_features:
        out.append("  int8   " + ", ".join(f"{names.get(k, k)} {'yes' if v else 'no'}" for k, v in mc.cpu_features.items()))
    out.append(f"         {mc.int8_note}")
    out.append(f"  GPU    {'; '.join(mc.gpus) if mc.gpus else mc.gpu_note}")
    if mc.jetson:
        out.append(f"  Jetson {mc.jetson}")
    out += ["", "Runtimes"]
    for rt in r.runtimes:
        ver = f"{rt.version or '?'}" + (f" ({rt.distribution})" if rt.distribution and rt.distribution != rt.name else "")
        extra = (f"; providers: {', '.join(rt.providers)}" if rt.providers else "") + (f"; {rt.note}" if rt.note else "")
        out.append(f"  {rt.name:<15} {ver if rt.installed else 'not installed':<28} {extra.lstrip('; ')}".rstrip())
    out += ["", "Backends"]
    out += [f"  {b:<12} {why}" for b, why in r.backends.items()]
    out += ["", "Bundled models"]
    for bm in r.models:
        arts = ", ".join(f"{k}{'' if p else ' (not installed)'}" for k, p in bm.artifacts.items())
        tag = " (default)" if bm.default else (" (reference)" if bm.reference else "")
        out.append(f"  {bm.name}{tag}: {arts}")
    m = r.measurement
    out += ["", f"Latency of {m.model} here ({m.seconds:g} s per row, threads {m.threads or 'default'}; ms per face)"]
    rows = [("backend", "artifact", "b1 p50", "b1 p95", "b8/face", "load", "threads", "status")]
    notes: list[str] = []
    for row in m.rows:
        status = row.status
        if not row.ok:
            what = row.backend if row.artifact == row.backend else f"{row.backend} {row.artifact}"
            notes.append(f"  [{len(notes) + 1}] {what}: {row.status.split(': ', 1)[-1]}")
            status = f"{row.status.split(':', 1)[0]} [{len(notes)}]"
        rows.append((row.backend, row.artifact, _ms(row.p50_ms_b1), _ms(row.p95_ms_b1), _ms(row.per_face_ms_b8),
                     "-" if row.load_ms is None else f"{row.load_ms:.0f} ms", str(row.threads or "-"), status))
    widths = [max(len(x[i]) for x in rows) for i in range(len(rows[0]))]
    for x in rows:
        cells = (c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(x, widths)))
        out.append(("  " + "  ".join(cells)).rstrip())
    out += notes
    out.append("")
    rec = r.recommendation
    if rec is None:
        out.append("Recommendation: none: no backend ran here (see the status column)")
    else:
        out.append(f"Recommended: {rec.backend} {rec.artifact} ({_ms(rec.p50_ms_b1)} ms per face at batch 1, p50"
                   + (f"; {rec.speedup_vs_runner_up:.2f}x faster than {rec.runner_up}"
                      if rec.runner_up and rec.speedup_vs_runner_up else "")
                   + ")")
        out.append(f"  rule: {rec.rule}")
        if rec.note:
            out.append(f"  note: {rec.note}")
        if rec.auto_choice:
            out.append(f"  backend='auto' loads {rec.auto_choice}; "
                       "EmotionDetector(backend='fastest') measures once and uses the fastest")
    entry = r.fastest_cache.get("entry")
    if entry:
        out.append(f"  cached fastest choice: {entry['backend']} {entry['artifact']} (measured {entry.get('measured_at')}) "
                   f"in {r.fastest_cache['file']}" + ("; refresh with --refresh" if not r.fastest_cache.get("stored") else ""))
    elif r.fastest_cache.get("note"):
        out.append(f"  {r.fastest_cache['note']}")
    else:
        out.append(f"  no cached fastest choice yet ({r.fastest_cache['file']}): the first backend='fastest' measures, "
                   "or store this one with --refresh")
    return "\n".join(out)
