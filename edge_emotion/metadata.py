"""Model metadata that travels inside every artifact.

A model file alone is enough to run: its labels, input size, channels and
normalisation are stored with it (TFLite: an associated file in the model's zip
section; ONNX: ``metadata_props``; Keras and TensorRT: a JSON sidecar), and the
runtime reads them from there instead of assuming anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
from .formats import format_by_name, format_for_path, has_magic
from .preprocessing import DEFAULT_CROP_MARGIN, DEFAULT_CROP_SHIFT_Y, Preprocessing

__all__ = ["ModelMetadata", "read_metadata", "sha256_file", "TFLITE_METADATA_NAME", "ONNX_METADATA_KEY"]

TFLITE_METADATA_NAME = "edge_emotion.json"
ONNX_METADATA_KEY = "edge_emotion"
SCHEMA_VERSION = 1


@dataclass
class ModelMetadata:
    """Everything a runtime needs to feed a classifier and read its output.

    Preprocessing contract (:class:`edge_emotion.preprocessing.Preprocessing` implements
    it, for the runtime and for training): a face box is enlarged by ``crop_margin`` and
    moved by ``crop_shift_y`` into a square, resized to ``input_size`` (height, width) by
    ``resize`` ("bilinear"; or "area": pixel-area average when shrinking, bilinear when
    enlarging), converted to ``color`` ("gray" or "rgb"), and each pixel value ``p`` in
    0..255 becomes ``(p - mean) / std`` as float32, laid out NHWC. Quantised artifacts
    state their own input scale and zero point; the backend applies them after this step.
    """

    labels: list[str]
    input_size: tuple[int, int] = (48, 48)
    color: str = "gray"
    mean: float = 0.0
    std: float = 1.0
    multi_label: bool = False
    model_name: str = "edge_cnn"
    label_set: str = "fer7"
    precision: str = "fp32"
    format: str = "keras"
    data_sha256: str | None = None
    source_sha256: str | None = None
    crop_margin: float = DEFAULT_CROP_MARGIN
    crop_shift_y: float = DEFAULT_CROP_SHIFT_Y
    resize: str = "bilinear"  # what the runtime's crops did before this field existed
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        try:
            self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ModelError(f"model metadata input_size must be (height, width), got {self.input_size!r}") from None
        self.labels = [str(v) for v in self.labels]
        if not self.labels:
            raise ModelError("model metadata has no labels")
        if len(set(self.labels)) != len(self.labels):
            raise ModelError(f"model metadata has duplicate labels: {self.labels}")
        try:  # the transform's own checks: size, colour, resize method, std
            self.preprocessing  # noqa: B018
        except (ValueError, TypeError) as exc:
            raise ModelError(f"model metadata: {exc}") from None

    @property
    def preprocessing(self) -> Preprocessing:
        """This model's face -> input transform (:mod:`edge_emotion.preprocessing`)."""
        return Preprocessing.from_metadata(self)

    @property
    def trained_on_val(self) -> bool:
        """True for a refit: its dataset's val split was part of its training data, so no val figure is held out.

        Read from what training recorded: ``refit`` (kept by the exporter), the run's ``config`` or its
        ``final_weights``.
        """
        ex = self.extra or {}
        return bool(ex.get("refit") or (ex.get("config") or {}).get("refit")
                    or (ex.get("final_weights") or {}).get("refit"))

    @property
    def channels(self) -> int:
        return self.preprocessing.channels

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-sample input shape, HWC."""
        return self.preprocessing.input_shape

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelMetadata":
        known = set(cls.__dataclass_fields__)
        missing = {"labels"} - set(d)
        if missing:
            raise ModelError(f"model metadata lacks required keys {sorted(missing)}")
        kwargs = {k: v for k, v in d.items() if k in known}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelMetadata":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model metadata is not valid JSON: {exc}") from None
        if not isinstance(d, dict):
            raise ModelError("model metadata JSON must be an object")
        return cls.from_dict(d)

    def derive(self, **changes: Any) -> "ModelMetadata":
        """A copy with some fields changed (used by the exporters)."""
        d = self.to_dict()
        d.update(changes)
        return ModelMetadata.from_dict(d)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sidecar_path(path: str | Path) -> Path:
    """``model.keras`` -> ``model.keras.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


# ---------------------------------------------------------------- readers
def _read_tflite(path: Path) -> ModelMetadata:
    data = path.read_bytes()
    if not has_magic(format_by_name("tflite"), data):
        raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); the file is damaged or not a .tflite")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return ModelMetadata.from_json(zf.read(TFLITE_METADATA_NAME))
    except (zipfile.BadZipFile, KeyError):
        raise ModelError(
            f"{path}: TFLite model carries no {TFLITE_METADATA_NAME} metadata; "
            "export it with `edge-emotion export` or attach metadata with edge_emotion.metadata.write_tflite_metadata"
        ) from None


def write_tflite_metadata(path: str | Path, meta: ModelMetadata) -> None:
    """Attach ``meta`` to a .tflite file as an associated file (TFLite's zip convention).

    The flatbuffer is left untouched; a zip archive holding ``edge_emotion.json`` is
    appended, the same layout the TFLite metadata populator uses for associated files.
    Interpreters ignore it; ``zipfile`` reads it from the end of the file.
    """
    path = Path(path)
    data = path.read_bytes()
    if not has_magic(format_by_name("tflite"), data):
        raise ModelError(f"{path}: not a TFLite flatbuffer")
    try:  # strip a previous zip section
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            start = min(info.header_offset for info in zf.infolist())
            data = data[:start] if start > 0 else data
    except zipfile.BadZipFile:
        pass
    # zipfile in append mode on a stream that holds no archive yet writes one after the
    # existing bytes, with offsets that count from the start of the file.
    out = io.BytesIO(data)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr(TFLITE_METADATA_NAME, meta.to_json())
    path.write_bytes(out.getvalue())


def _read_onnx(path: Path) -> ModelMetadata:
    props: dict[str, str] | None = None
    try:
        import onnx  # lighter than a session, and reads damaged files with a clear error

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several types
            raise ModelError(f"{path}: not a readable ONNX model ({exc.__class__.__name__}: {exc})") from None
        props = {p.key: p.value for p in model.metadata_props}
    except ImportError:
        try:
            import onnxruntime as ort
        except ImportError:
            from .errors import BackendUnavailableError

            raise BackendUnavailableError(
                f"{path}: reading ONNX metadata needs onnxruntime or onnx: pip install 'edge-emotion[onnx]'"
            ) from None
        try:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None
        props = dict(sess.get_modelmeta().custom_metadata_map)
    if ONNX_METADATA_KEY not in props:
        raise ModelError(f"{path}: ONNX model has no '{ONNX_METADATA_KEY}' metadata_props entry; export it with `edge-emotion export`")
    return ModelMetadata.from_json(props[ONNX_METADATA_KEY])


def _read_sidecar(path: Path) -> ModelMetadata:
    side = sidecar_path(path)
    if not side.exists():
        raise ModelError(f"{path}: metadata sidecar {side.name} is missing; keep it next to the model file")
    return ModelMetadata.from_json(side.read_text())


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read the :class:`ModelMetadata` stored with a model artifact of any format."""
    path = Path(path)
    fmt = format_for_path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return _READERS[fmt.metadata_kind](path)


# Format.metadata_kind -> reader: the format table says where each format keeps its metadata
_READERS = {"tflite_zip": _read_tflite, "onnx_props": _read_onnx, "sidecar": _read_sidecar}
