"""Face detectors: BlazeFace (default), YuNet, and OpenCV's Haar cascade (fallback)."""

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
    """``auto``: BlazeFace full-range when its weights and LiteRT are installed, else Haar (with a log line saying so)."""
    if isinstance(name, FaceDetector):
        return name
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    from .blazeface import BlazeFaceDetector
    from .haar import HaarFaceDetector

    if name in BLAZEFACE_VARIANTS:
        return BlazeFaceDetector(BLAZEFACE_VARIANTS[name], threads=threads, providers=providers, **kwargs)
    high_res = kwargs.pop("high_res", "auto")
    input_side = kwargs.pop("input_side", None)
    if name == "yunet":
        from .yunet import YuNetDetector

        if high_res == "on":
            raise ValueError("high_res='on' needs BlazeFace (the tile pyramid); YuNet runs the whole frame at "
                             "input_side (detector_side) network pixels: raise it for small faces")
        return YuNetDetector(threads=threads, **({} if input_side is None else {"input_side": input_side}), **kwargs)
    if name == "haar":
        if high_res == "on":
            raise ValueError("high_res='on' needs BlazeFace (the tile pyramid); the Haar cascade scans every scale itself")
        if input_side is not None:
            raise ValueError("input_side needs BlazeFace (it sets the network's input); the Haar cascade scans every scale itself")
        return HaarFaceDetector(**kwargs)
    try:
        det = BlazeFaceDetector("full", threads=threads, providers=providers, high_res=high_res, input_side=input_side,
                                **kwargs)
        log.info("face detector: BlazeFace full-range (%s)", det.backend.name)
        return det
    except BackendUnavailableError as exc:
        log.warning("face detector: OpenCV Haar cascade (BlazeFace unavailable: %s). "
                    "For better recall install a runtime for the bundled BlazeFace weights: pip install ai-edge-litert (or onnxruntime "
                    "with an exported detector)", exc)
        return HaarFaceDetector(**kwargs)
