"""Export the BlazeFace face detector (the TFLite weights bundled in the package) to ONNX or a TensorRT
engine, so a Jetson runs the whole pipeline on one runtime. Validated against the TFLite
original on real scene photos: same face count, boxes with IoU >= 0.9."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import EdgeEmotionError
from ..formats import format_by_name
from ..runtime.face_detection.base import iou_xywh
from ..runtime.face_detection.blazeface import CONFIGS, BlazeFaceDetector, weights_path

log = logging.getLogger(__name__)


def export_detector(variant: str = "full", format: str = "onnx", out: str | Path | None = None, precision: str = "fp16",
                    validate_images: list[np.ndarray] | None = None) -> Path:
    if format not in ("onnx", "engine"):
        raise ValueError(f"the face detector exports to onnx or engine, not {format!r}")
    if format == "engine":
        from .tensorrt import _require_trt

        _require_trt()  # say so before any work when there is no GPU
    import onnx
    import tf2onnx

    if variant not in CONFIGS:
        raise ValueError(f"variant must be one of {sorted(CONFIGS)}")
    src = weights_path(variant)
    name = Path(src.name).with_suffix(format_by_name(format).suffix)
    out = Path(out) if out else name
    if out.is_dir():
        out = out / name
    onnx_path = out if format == "onnx" else out.with_suffix(format_by_name("onnx").suffix)
    proto, _ = tf2onnx.convert.from_tflite(str(src), opset=17)
    if format == "engine" and precision == "fp16":
        from .onnx import to_fp16

        proto = to_fp16(proto)
    onnx.save(proto, str(onnx_path))
    if format == "engine":
        from .tensorrt import build_engine

        build_engine(onnx_path, out, None, precision, max_batch=1)
    if validate_images:
        ref = BlazeFaceDetector(variant, fit="square")  # the exported model runs at the square size
        new = BlazeFaceDetector(variant, model_path=out)
        for i, img in enumerate(validate_images):
            a, b = ref.detect(img), new.detect(img)
            if len(a) != len(b):
                raise EdgeEmotionError(f"{out.name}: finds {len(b)} faces in validation image {i}, the TFLite original {len(a)}")
            if a:
                ious = iou_xywh(np.array([[f.x, f.y, f.w, f.h] for f in a]), np.array([[f.x, f.y, f.w, f.h] for f in b]))
                if ious.max(1).min() < 0.9:
                    raise EdgeEmotionError(f"{out.name}: boxes differ from the TFLite original (IoU {ious.max(1).min():.3f})")
        log.info("%s: validated on %d images against %s", out.name, len(validate_images), src.name)
    return out
