"""Face detectors: YuNet (default), BlazeFace, and OpenCV's Haar cascade (fallback)."""

from __future__ import annotations

import logging

from ...errors import BackendUnavailableError
from .base import FaceBox, FaceDetector, iou_xywh

log = logging.getLogger(__name__)

__all__ = ["FaceBox", "FaceDetector", "create_face_detector", "iou_xywh", "DETECTORS"]

# detector name -> BlazeFace variant (a key of blazeface.CONFIGS)
BLAZEFACE_VARIANTS = {"blazeface": "full", "blazeface_full": "full", "blazeface_full_sparse": "full_sparse",
                      "blazeface_short": "short"}
DETECTORS = ("auto", *BLAZEFACE_VARIANTS, "yunet", "haar")


def create_face_detector(name: str | FaceDetector = "auto", threads: int | None = None, providers: list | None = None,
                         **kwargs) -> FaceDetector:
    """``auto``: YuNet when LiteRT is installed (measured against BlazeFace full-range in
    ``benchmarks/face_detection.py``: faster, more faces), else Haar (with a log line saying so)."""
    if isinstance(name, FaceDetector):
        return name
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    from .blazeface import BlazeFaceDetector
    from .haar import HaarFaceDetector
    from .yunet import YuNetDetector

    if name in BLAZEFACE_VARIANTS:
        return BlazeFaceDetector(BLAZEFACE_VARIANTS[name], threads=threads, providers=providers, **kwargs)
    high_res = kwargs.pop("high_res", "auto")
    input_side = kwargs.pop("input_side", None)
    if name == "haar":
        if high_res == "on":
            raise ValueError("high_res='on' needs YuNet or BlazeFace; the Haar cascade scans every scale itself")
        if input_side is not None:
            raise ValueError("input_side needs YuNet or BlazeFace (it sets the network's input); the Haar cascade scans "
                             "every scale itself")
        return HaarFaceDetector(**kwargs)
    if input_side is not None:
        kwargs["input_side"] = input_side
    try:
        det = YuNetDetector(threads=threads, high_res=high_res, **kwargs)
    except BackendUnavailableError as exc:
        if name == "yunet":
            raise
        log.warning("face detector: OpenCV Haar cascade (YuNet unavailable: %s). "
                    "For better recall install a runtime for the bundled YuNet and BlazeFace weights: pip install "
                    "ai-edge-litert (or onnxruntime with an exported BlazeFace: face_detector=BlazeFaceDetector(...))", exc)
        return HaarFaceDetector(**kwargs)
    log.info("face detector: YuNet (%s)", det.backend.name)
    return det
