"""Runtime backends. Which one loads a file is decided by the format table
(:mod:`edge_emotion.formats`): the file's suffix names the format, the format names the backend."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from ...errors import BackendUnavailableError
from ...formats import FORMATS, format_for_path
from .base import Backend

# backend name -> "module:Class"; modules are imported only when used
BACKENDS: dict[str, str] = {
    "litert": "edge_emotion.runtime.backends.litert:LiteRTBackend",
    "onnxruntime": "edge_emotion.runtime.backends.onnxrt:OnnxRuntimeBackend",
    "tensorrt": "edge_emotion.runtime.backends.tensorrt:TensorRTBackend",
    "keras": "edge_emotion.runtime.backends.keras_backend:KerasBackend",
}

__all__ = ["Backend", "BACKENDS", "backend_class", "load_backend", "available_backends"]


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    mod, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def available_backends() -> dict[str, str]:
    """Backend name -> 'ok' or the reason it cannot run here."""
    out = {}
    for fmt in FORMATS:
        if fmt.backend is None:
            continue
        reason = None
        for mod in fmt.runtime_modules:
            if importlib.util.find_spec(mod.split(".")[0]) is not None:
                reason = "ok"
                break
        if reason is None:
            reason = f"not installed: pip install 'edge-emotion[{fmt.extra}]'"
        elif fmt.gpu_only:
            from .tensorrt import gpu_available

            ok, why = gpu_available()
            reason = "ok" if ok else why
        out[fmt.backend] = reason
    return out


def load_backend(path: str | Path, backend: str = "auto", threads: int | None = None, providers: list | None = None) -> Backend:
    """Open ``path`` on ``backend`` (``auto``: the backend the format table names for its suffix)."""
    fmt = format_for_path(path)
    name = fmt.backend if backend == "auto" else backend
    if name != fmt.backend:
        raise BackendUnavailableError(f"{path}: a {fmt.name} file runs on the {fmt.backend!r} backend, not {name!r}")
    return backend_class(name).load(path, threads=threads, providers=providers)
