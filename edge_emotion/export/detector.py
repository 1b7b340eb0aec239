"""Export the BlazeFace face detector (the TFLite weights bundled in the package) to ONNX, a TensorRT engine
or a full-int8 TFLite file, so a Jetson runs the whole pipeline on one runtime and an ARM board can use
int8 kernels. Every export is validated against the bundled original on real images
(:func:`validate_detector`: the original's faces found again, boxes by IoU, no extra faces); an export
that fails is rejected (:class:`DetectorValidationError`) and its file deleted."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import EdgeEmotionError
from ..formats import format_by_name
from ..runtime.face_detection.base import iou_xywh
from ..runtime.face_detection.blazeface import CONFIGS, BlazeFaceDetector, weights_path

log = logging.getLogger(__name__)

# what each precision must keep of the original's faces: float exports are the same network and must find
# every face with near-identical boxes; int8 rounds every activation, so a face scored near the threshold
# may come or go
GATES = {"fp32": (1.0, 0.0, 0.9), "fp16": (1.0, 0.0, 0.9), "int8": (0.97, 0.03, 0.85)}  # recall, extra, median IoU


class DetectorValidationError(EdgeEmotionError):
    """The exported detector does not find the original's faces."""


@dataclass
class DetectorValidation:
    images: int
    reference_faces: int
    found: int  # the original's faces matched at IoU >= 0.5
    extra: int  # faces the export finds that the original does not
    median_iou: float
    recall_gate: float
    extra_gate: float
    iou_gate: float

    @property
    def recall(self) -> float:
        return self.found / self.reference_faces if self.reference_faces else 1.0

    @property
    def passed(self) -> bool:
        return (self.recall >= self.recall_gate and self.extra <= self.extra_gate * max(self.reference_faces, 1)
                and self.median_iou >= self.iou_gate)

    def to_dict(self) -> dict:
        return {**asdict(self), "recall": round(self.recall, 4), "passed": self.passed}

    def summary(self) -> str:
        return (f"{self.found}/{self.reference_faces} of the original's faces on {self.images} images "
                f"(gate {self.recall_gate:.0%}), {self.extra} extra (at most {self.extra_gate:.0%}), "
                f"median IoU {self.median_iou:.3f} (gate {self.iou_gate})")


def validate_detector(reference: BlazeFaceDetector, exported: BlazeFaceDetector, images: Sequence[np.ndarray],
                      precision: str = "fp32") -> DetectorValidation:
    """Run both detectors on ``images`` and compare: the reference's faces matched by the export (IoU >= 0.5),
    the export's unmatched faces, and the median IoU of the matched boxes, against ``precision``'s gate."""
    found = extra = total = 0
    ious: list[float] = []
    for img in images:
        a = np.array([[f.x, f.y, f.w, f.h] for f in reference.detect(img)], float).reshape(-1, 4)
        b = np.array([[f.x, f.y, f.w, f.h] for f in exported.detect(img)], float).reshape(-1, 4)
        total += len(a)
        if len(a) and len(b):
            m = iou_xywh(a, b)
            found += int((m.max(1) >= 0.5).sum())
            extra += int((m.max(0) < 0.5).sum())
            ious += [float(v) for v in m.max(1) if v >= 0.5]
        else:
            extra += len(b)
    r, e, i = GATES[precision]
    return DetectorValidation(len(images), total, found, extra, float(np.median(ious)) if ious else 1.0, r, e, i)


def letterboxed(variant: str, images: Sequence[np.ndarray]) -> np.ndarray:
    """``images`` as the detector's square input sees them (N, size, size, 3), for calibration."""
    det = BlazeFaceDetector(variant, fit="square", high_res="off")
    return np.stack([det._letterbox(img)[0] for img in images])


def export_int8_tflite(variant: str, out: Path, calib_images: Sequence[np.ndarray]) -> Path:
    """The bundled ``variant`` rebuilt in TensorFlow (:mod:`.tflite_rebuild`, checked against the original) and
    converted to full-int8 TFLite (every op int8, float input and outputs), its activation ranges
    calibrated on ``calib_images`` (real frames like the ones it will see)."""
    import tensorflow as tf

    from .tflite_rebuild import check_rebuild, rebuild

    if len(calib_images) < 8:
        raise ValueError(f"int8 calibration needs real frames: got {len(calib_images)} image(s), give at least 8 "
                         "(photos or video frames like the ones the detector will see)")
    content = weights_path(variant).read_bytes()
    fn, shape = rebuild(content)
    calib = letterboxed(variant, calib_images)
    err = check_rebuild(content, fn, calib[:1])
    log.info("%s rebuilt in TensorFlow: largest relative difference %.1e", weights_path(variant).name, err)
    f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c[None]] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.write_bytes(conv.convert())
    return out


def frames_from(paths: Sequence[str | Path], per_video: int = 100) -> list[np.ndarray]:
    """Images from ``paths``: image files, folders of them, or videos (``per_video`` frames spread over each)."""
    import cv2

    from ..cli_stream import VIDEO_SUFFIXES
    from ..datasets import IMAGE_SUFFIXES
    from ..runtime.image import read_image

    frames = []
    for p in map(Path, paths):
        if p.is_dir():
            frames += [read_image(str(f)) for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(p))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if not cap.isOpened() or n <= 0:
                raise FileNotFoundError(f"cannot read video {p}")
            for i in np.linspace(0, n - 1, min(n, per_video)).astype(int):
                cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
                ok, f = cap.read()
                if ok:
                    frames.append(f)
            cap.release()
        else:
            frames.append(read_image(str(p)))
    return frames


def check_request(variant: str, format: str, precision: str) -> None:
    """Refuse a variant, format and precision the detector exporter cannot make, before any work."""
    if variant not in CONFIGS:
        raise ValueError(f"variant must be one of {sorted(CONFIGS)}, got {variant!r}")
    if format not in ("onnx", "engine", "tflite"):
        raise ValueError(f"the face detector exports to onnx, engine or tflite, not {format!r}")
    if format == "tflite" and precision != "int8":
        raise ValueError(f"the bundled detector already is a float TFLite file ({weights_path(variant).name}); "
                         "export it to tflite only at int8")
    if precision == "int8" and format != "tflite":
        raise ValueError(f"an int8 face detector is exported to tflite only, not {format}")


def export_detector(variant: str = "full", format: str = "onnx", out: str | Path | None = None, precision: str = "fp16",
                    validate_images: list[np.ndarray] | None = None,
                    calib_images: Sequence[np.ndarray] | None = None) -> Path:
    """Export the bundled BlazeFace ``variant``: ``onnx`` (fp32), ``engine`` (TensorRT at ``precision``) or
    ``tflite`` (``precision`` int8, calibrated on ``calib_images``). With ``validate_images`` the export is
    compared with the original (:func:`validate_detector`) and deleted if it fails."""
    check_request(variant, format, precision)
    if format == "engine":
        from .tensorrt import _require_trt

        _require_trt()  # say so before any work when there is no GPU
    src = weights_path(variant)
    stem = Path(src.name).stem + ("_int8" if precision == "int8" else "")
    name = Path(stem).with_suffix(format_by_name(format).suffix)
    out = Path(out) if out else name
    if out.is_dir():
        out = out / name
    if format == "tflite":
        export_int8_tflite(variant, out, calib_images or [])
    else:
        import onnx
        import tf2onnx

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
        new = BlazeFaceDetector(variant, model_path=out)
        ref = BlazeFaceDetector(variant, fit=new.fit)  # the same input layout (exported ONNX/engines run square)
        v = validate_detector(ref, new, validate_images, precision if format != "onnx" else "fp32")
        if not v.passed:
            out.unlink(missing_ok=True)
            raise DetectorValidationError(f"{out.name} rejected against {src.name}: {v.summary()}")
        log.info("%s: validated against %s: %s", out.name, src.name, v.summary())
    return out
