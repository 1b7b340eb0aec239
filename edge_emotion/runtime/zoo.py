"""Bundled models: ``edge_emotion/models/<name>/`` with an ``index.json`` that lists each
artifact's file, format, precision and SHA-256. Artifacts are checked against it on load."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

from ..errors import BackendUnavailableError, ModelError
from ..metadata import sha256_file

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
INDEX = MODELS_DIR / "index.json"

# Which bundled artifact each backend prefers, best first.
PREFERENCE = {
    "litert": [("tflite", "int8"), ("tflite", "fp16"), ("tflite", "fp32")],
    "onnxruntime": [("onnx", "int8"), ("onnx", "fp32"), ("onnx", "fp16")],
    "onnxruntime-gpu": [("onnx", "fp16"), ("onnx", "fp32")],
    "tensorrt": [("engine", "fp16")],
}


@lru_cache(maxsize=1)
def load_index() -> dict:
    if not INDEX.is_file():
        return {"default": None, "models": {}}
    return json.loads(INDEX.read_text())


def bundled_models() -> list[str]:
    return sorted(load_index()["models"])


def _verify(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ModelError(f"{path}: SHA-256 {got[:12]}... does not match the recorded {expected[:12]}...; "
                         "the bundled model is damaged: reinstall edge-emotion")


def resolve_model(model: str | Path | None, backend: str = "auto", providers: list | None = None) -> Path:
    """A model argument -> a file path. ``None``: the bundled default; a bundled name; or a path."""
    index = load_index()
    if model is not None and (Path(model).suffix or Path(model).exists()):
        return Path(model)
    name = model or index.get("default")
    if not name:
        raise ModelError("no bundled default model in this installation; pass model=PATH to a .tflite/.onnx file")
    if name not in index["models"]:
        raise ModelError(f"unknown model {name!r}: not a file and not a bundled model ({', '.join(bundled_models()) or 'none'})")
    entry = index["models"][name]
    from .backends import available_backends

    avail = available_backends()
    if backend == "auto":
        gpu_ep = providers and any("CUDA" in str(p) or "Tensorrt" in str(p) for p in providers)
        order = ["onnxruntime-gpu"] if gpu_ep else ["litert", "onnxruntime"]
    else:
        order = [backend]
    tried = []
    for b in order:
        runtime = "onnxruntime" if b == "onnxruntime-gpu" else b
        if avail.get(runtime) != "ok":
            tried.append(f"{runtime}: {avail.get(runtime, 'unknown backend')}")
            continue
        if b == "keras":
            keras_entry = entry.get("keras") or {}
            if keras_entry.get("file"):
                path = MODELS_DIR / name / keras_entry["file"]
                _verify(path, keras_entry["sha256"])
                return path
            tried.append(f"keras: model {name!r} ships without its Keras model (only "
                         f"{', '.join(sorted(entry['artifacts'])) or 'no artifacts'}); use backend litert or onnxruntime")
            continue
        for fmt_name, precision in PREFERENCE.get(b, []):
            art = entry["artifacts"].get(f"{fmt_name}_{precision}")
            if art:
                path = MODELS_DIR / name / art["file"]
                _verify(path, art["sha256"])
                return path
        tried.append(f"{runtime}: model {name!r} has no artifact for it")
    raise BackendUnavailableError(f"cannot run bundled model {name!r} here: " + "; ".join(tried))
