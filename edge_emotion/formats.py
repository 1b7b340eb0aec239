"""The one table of model formats and runtime backends.

Every export format and every runtime backend is described here exactly once.
The exporter (:mod:`edge_emotion.export`), the runtime loader
(:mod:`edge_emotion.runtime.backends`), the CLI and the benchmark all read this
table; nothing else in the code base hard-codes a suffix or a precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Format", "FORMATS", "format_for_path", "format_by_name", "artifact_name"]


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


FORMATS: tuple[Format, ...] = (
    Format(
        name="keras",
        suffix=".keras",
        precisions=("fp32",),
        backend="keras",
        runtime_modules=("keras",),
        extra="train",
        metadata_location="sidecar <model>.json next to the .keras file",
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
