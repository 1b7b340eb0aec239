"""The one table of model formats and runtime backends.

Every export format and every runtime backend is described here exactly once.
The exporter (:mod:`edge_emotion.export`), the runtime loader
(:mod:`edge_emotion.runtime.backends`), the CLI and the benchmark all read this
table; nothing else in the code base hard-codes a suffix or a precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Format", "FORMATS", "Precision", "PRECISIONS", "BACKEND_PREFERENCE", "format_for_path", "format_by_name", "artifact_name",
           "all_precisions", "backend_names", "has_magic", "ships_in_package", "agreement_threshold",
           "artifact_key", "split_artifact_key"]


@dataclass(frozen=True)
class Precision:
    """One numeric precision an artifact can have."""

    name: str
    agreement: float
    """Top-1 agreement with the Keras source that an export must reach (``edge-emotion export
    --threshold`` overrides it). int8 is looser: quantisation noise flips low-margin predictions."""
    floor_tolerance: float
    """Accuracy (as a fraction) an artifact may lose against the floor recorded at bundling when it runs
    on another hardware class or runtime version: int8 kernels round differently on AVX2, AVX-512 VNNI
    and ARM dot-product paths; float kernels differ only in summation order. On the recording class
    and versions the floor is exact."""


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", agreement=0.999, floor_tolerance=0.001),
    Precision("fp16", agreement=0.999, floor_tolerance=0.002),
    Precision("int8", agreement=0.98, floor_tolerance=0.01),
)}


@dataclass(frozen=True)
class Format:
    """One model format: how it is written, which runtime loads it, what it needs."""

    name: str
    """Short name used on the command line (``--format``)."""
    suffix: str
    """File suffix of the artifact, including the dot."""
    precisions: tuple[str, ...]
    """Precisions the exporter can write for this format."""
    backend: str | None
    """Runtime backend that loads it (key of ``runtime.backends.BACKENDS``); ``None`` when not runnable without training extras."""
    runtime_modules: tuple[str, ...]
    """Python modules the runtime tries, in order, to load this format."""
    extra: str
    """``pip install edge-emotion[EXTRA]`` that provides the runtime."""
    export_extra: str = "train"
    """Extra needed to *write* the format."""
    gpu_only: bool = False
    """True when the format runs only on an NVIDIA GPU."""
    metadata_location: str = ""
    """Where the artifact keeps its :class:`~edge_emotion.metadata.ModelMetadata`."""
    description: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    magic: bytes | None = None
    """Bytes every valid file of this format has at ``magic_offset`` (None: the format has no fixed header)."""
    magic_offset: int = 0
    metadata_kind: str = "sidecar"
    """How the artifact stores its metadata: ``tflite_zip``, ``onnx_props`` or ``sidecar`` (see :mod:`edge_emotion.metadata`)."""
    package_precisions: tuple[str, ...] = ()
    """Precisions a device runs, which ship inside the wheel; every other artifact (Keras sources,
    fp32/fp16 variants) stays in the repository's ``zoo/`` folder."""


FORMATS: tuple[Format, ...] = (
    Format(
        name="keras",
        suffix=".keras",
        precisions=("fp32",),
        backend="keras",
        runtime_modules=("keras",),
        extra="train",
        metadata_location="sidecar <model>.json next to the .keras file",
        magic=b"PK\x03\x04",
        description="Keras 3 model as trained; the reference every export is validated against.",
    ),
    Format(
        name="tflite",
        suffix=".tflite",
        precisions=("fp32", "fp16", "int8"),
        backend="litert",
        runtime_modules=("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"),
        extra="tflite",
        metadata_location="associated file edge_emotion.json in the TFLite zip section",
        magic=b"TFL3",
        magic_offset=4,
        metadata_kind="tflite_zip",
        package_precisions=("int8",),
        description="LiteRT / TFLite flatbuffer. int8 is full-integer (int8 input and output).",
        notes={"int8": "full-integer, calibrated on real training images drawn evenly across classes"},
    ),
    Format(
        name="onnx",
        suffix=".onnx",
        precisions=("fp32", "fp16", "int8"),
        backend="onnxruntime",
        runtime_modules=("onnxruntime",),
        extra="onnx",
        metadata_location="ONNX metadata_props key 'edge_emotion'",
        metadata_kind="onnx_props",
        package_precisions=("int8", "fp16"),  # int8: ONNX Runtime on a CPU; fp16: CUDA / TensorRT execution providers
        description="ONNX (opset 17); int8 is static QDQ quantisation.",
        notes={
            "int8": "QDQ, per-channel weights, reduce_range=True: CPUs without VNNI lose accuracy "
            "with 8-bit activations x 8-bit weights overflowing in u8s8 accumulation",
        },
    ),
    Format(
        name="engine",
        suffix=".engine",
        precisions=("fp16", "int8", "fp32"),
        backend="tensorrt",
        runtime_modules=("tensorrt",),
        extra="tensorrt",
        export_extra="tensorrt",
        gpu_only=True,
        metadata_location="sidecar <model>.engine.json",
        description="TensorRT serialized engine built from the ONNX export (GPU only).",
    ),
)


BACKEND_PREFERENCE: dict[str, tuple[tuple[str, str], ...]] = {
    "litert": (("tflite", "int8"), ("tflite", "fp16"), ("tflite", "fp32")),
    "onnxruntime": (("onnx", "int8"), ("onnx", "fp32"), ("onnx", "fp16")),
    "onnxruntime-gpu": (("onnx", "fp16"), ("onnx", "fp32"), ("onnx", "int8")),
    "tensorrt": (("engine", "fp16"), ("engine", "int8"), ("engine", "fp32")),
    "keras": (("keras", "fp32"),),
}
"""Which artifact of a bundled model each backend picks, best first (``onnxruntime-gpu``: ONNX
Runtime with CUDA or TensorRT execution providers)."""


def all_precisions() -> tuple[str, ...]:
    """Every precision any format can be exported at (for CLI choices)."""
    return tuple(PRECISIONS)


def backend_names() -> tuple[str, ...]:
    """Every runtime backend, in table order (for CLI choices)."""
    return tuple(dict.fromkeys(f.backend for f in FORMATS if f.backend))


def has_magic(fmt: Format, head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) carries ``fmt``'s header; True for formats without one."""
    return fmt.magic is None or head[fmt.magic_offset : fmt.magic_offset + len(fmt.magic)] == fmt.magic


def agreement_threshold(precision: str) -> float:
    """The export gate for ``precision`` (minimum top-1 agreement with the Keras source)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return PRECISIONS[precision].agreement


def artifact_key(format_name: str, precision: str) -> str:
    """The key of an artifact in ``models/index.json``: ``tflite_int8``, ``onnx_fp16``, ..."""
    return f"{format_name}_{precision}"


def split_artifact_key(key: str) -> tuple[str, str]:
    """``tflite_int8`` -> (``tflite``, ``int8``); the Keras source's key ``keras`` -> (``keras``, ``fp32``)."""
    fmt, _, precision = key.partition("_")
    return fmt, precision or format_by_name(fmt).precisions[0]


def ships_in_package(format_name: str, precision: str) -> bool:
    """Whether a bundled model's artifact of this format and precision goes into the wheel."""
    return precision in format_by_name(format_name).package_precisions


def format_by_name(name: str) -> Format:
    """Return the :class:`Format` called ``name`` (``tflite``, ``onnx``, ...)."""
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    known = ", ".join(f.name for f in FORMATS)
    raise ValueError(f"unknown format {name!r}; known formats: {known}")


def format_for_path(path: str | Path) -> Format:
    """Return the :class:`Format` of a model file, judged by its suffix."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS:
        if fmt.suffix == suffix:
            return fmt
    known = ", ".join(f.suffix for f in FORMATS)
    raise ValueError(f"{path}: unknown model suffix {suffix!r}; expected one of {known}")


def artifact_name(stem: str, fmt: Format, precision: str) -> str:
    """File name of an exported artifact, e.g. ``model_int8.tflite``."""
    if precision not in fmt.precisions:
        raise ValueError(
            f"format {fmt.name!r} supports precisions {', '.join(fmt.precisions)}; got {precision!r}"
        )
    return f"{stem}_{precision}{fmt.suffix}"
