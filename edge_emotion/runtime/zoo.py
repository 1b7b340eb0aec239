"""Bundled models and where their files live.

``edge_emotion/models/index.json`` lists every model the project publishes: each artifact's
file, format, precision and SHA-256 (checked on load). The files a device runs (the
``package_precisions`` of :mod:`edge_emotion.formats`: int8 TFLite, int8 and fp16 ONNX) ship
inside the package in ``edge_emotion/models/<name>/``. Everything else (Keras sources, fp32
and fp16 variants, reference models such as AlexNet, training reports) stays in the
repository's ``zoo/<name>/`` folder: a checkout finds it there; an installed wheel says where it
lives.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

from ..errors import BackendUnavailableError, ModelError
from ..formats import BACKEND_PREFERENCE, artifact_key
from ..metadata import sha256_file

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
"""The package's models: what a device installs."""
ZOO_DIR = Path(__file__).resolve().parents[2] / "zoo"
"""The repository's model zoo (present in a checkout, not in an installed wheel)."""
INDEX = MODELS_DIR / "index.json"
REPO_HINT = "the edge-emotion repository"


@lru_cache(maxsize=1)
def load_index() -> dict:
    if not INDEX.is_file():
        return {"default": None, "models": {}}
    return json.loads(INDEX.read_text())


def bundled_models() -> list[str]:
    return sorted(load_index()["models"])


def model_dirs(name: str) -> list[Path]:
    """Where ``name``'s files may be: the package's folder first, then the repository's zoo."""
    return [MODELS_DIR / name, ZOO_DIR / name]


def _locate(name: str, filename: str) -> Path | None:
    return next((d / filename for d in model_dirs(name) if (d / filename).is_file()), None)


def model_file(name: str, filename: str) -> Path:
    """Path of one of ``name``'s files, from the package or (in a checkout) the repository's ``zoo/``."""
    path = _locate(name, filename)
    if path is not None:
        return path
    raise ModelError(f"{filename} of model {name!r} is not installed: the wheel carries only what a device runs; "
                     f"it lives in {REPO_HINT} under zoo/{name}/ (run from a checkout, or pass model=PATH)")


def measured_file(path: str | Path) -> dict:
    """Which model file a measurement ran: ``{"file": "<folder>/<name>", "sha256": ...}``.

    Benchmarks store it beside their figures, so a figure can be traced to the artifact it describes
    and a test can tell when a published figure belongs to a model that no longer ships."""
    path = Path(path)
    return {"file": f"{path.parent.name}/{path.name}", "sha256": sha256_file(path)}


def _verify(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ModelError(f"{path}: SHA-256 {got[:12]}... does not match the recorded {expected[:12]}...; "
                         "the bundled model is damaged: reinstall edge-emotion")


def artifact_path(name: str, key: str) -> Path:
    """Verified path of bundled model ``name``'s artifact ``key`` (``tflite_int8``, ``keras``, ...)."""
    entry = load_index()["models"].get(name)
    if entry is None:
        raise ModelError(f"unknown model {name!r}: not a bundled model ({', '.join(bundled_models()) or 'none'})")
    if key == "keras":
        art = entry.get("keras") or {}
        if not art.get("file"):
            raise ModelError(f"model {name!r} is published without its Keras model (only "
                             f"{', '.join(sorted(entry['artifacts'])) or 'no artifacts'}); use backend litert or onnxruntime")
    elif key in entry["artifacts"]:
        art = entry["artifacts"][key]
    else:
        raise ModelError(f"model {name!r} has no {key} artifact (it has {', '.join(sorted(entry['artifacts']))})")
    path = model_file(name, art["file"])
    _verify(path, art["sha256"])
    return path


def artifacts(name: str) -> dict[str, Path | None]:
    """Every artifact key of ``name`` -> its path here, or None where this installation lacks the file."""
    entry = load_index()["models"][name]
    keys = list(entry["artifacts"]) + (["keras"] if (entry.get("keras") or {}).get("file") else [])
    out: dict[str, Path | None] = {}
    for key in keys:
        file = entry["keras"]["file"] if key == "keras" else entry["artifacts"][key]["file"]
        out[key] = _locate(name, file)
    return out


def published_with_flip_average(path: str | Path) -> bool:
    """Whether ``path`` is the Keras source of a bundled model whose artifacts average each face with its mirror
    image in their graphs: the Keras backend then averages the same way, so every backend of the model answers
    alike (the artifacts were validated against that averaging)."""
    path = Path(path).resolve()
    for name, entry in load_index()["models"].items():
        file = (entry.get("keras") or {}).get("file")
        if entry.get("flip_average") and file and any(path == (d / file).resolve() for d in model_dirs(name)):
            return True
    return False


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
            try:
                return artifact_path(name, "keras")
            except ModelError as exc:
                tried.append(f"keras: {exc}")
                continue
        keys = [k for k in (artifact_key(*fp) for fp in BACKEND_PREFERENCE.get(b, ())) if k in entry["artifacts"]]
        for key in keys:
            if _locate(name, entry["artifacts"][key]["file"]) is not None:
                return artifact_path(name, key)
        tried.append(f"{runtime}: model {name!r} has no artifact for it" if not keys else
                     f"{runtime}: {', '.join(keys)} of model {name!r} not installed (it lives in {REPO_HINT} under zoo/{name}/)")
    raise BackendUnavailableError(f"cannot run bundled model {name!r} here: " + "; ".join(tried))
