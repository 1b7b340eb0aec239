"""MediaPipe BlazeFace (short-range and full-range) on the SDK's own backends.

The anchor generation (SSD anchors as in MediaPipe's ``SsdAnchorsCalculator``), box and
keypoint decoding and weighted non-maximum suppression are written here; the network
weights (Apache-2.0, Google MediaPipe) ship inside this package in ``weights/`` (see the
project's NOTICE). Nothing is downloaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...errors import ModelError
from ...formats import FORMATS, all_precisions
from ..image import downscale
from .base import FaceBox, FaceDetector, iou_xywh

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# The bundled weights are TFLite; `edge-emotion export-detector` writes the formats other runtimes load
DETECTOR_FORMATS = tuple(f.name for f in FORMATS if f.backend not in (None, "keras", "litert"))
DETECTOR_PRECISIONS = tuple(p for p in all_precisions() if p != "int8")  # int8 BlazeFace: not validated yet


@dataclass(frozen=True)
class BlazeFaceConfig:
    name: str
    file: str
    input_size: int
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    interpolated_aspect: float  # 1.0 -> one extra anchor per cell; 0.0 -> none
    score_threshold: float
    nms_threshold: float = 0.3


CONFIGS = {
    "short": BlazeFaceConfig("blazeface_short", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 0.1484375, 0.75, 1.0, 0.5),
    "full": BlazeFaceConfig("blazeface_full", "face_detection_full_range.tflite", 192, (4,), 0.1484375, 0.75, 0.0, 0.6),
    # the same full-range network with sparse weights (XNNPACK has sparse kernels): same anchors and outputs
    "full_sparse": BlazeFaceConfig("blazeface_full_sparse", "face_detection_full_range_sparse.tflite", 192, (4,),
                                   0.1484375, 0.75, 0.0, 0.6),
}


def weights_path(variant: str = "short") -> Path:
    """Path of a bundled BlazeFace ``.tflite`` (``full``, ``full_sparse`` or ``short``).

    Exported copies (ONNX, TensorRT) are written by ``edge-emotion export-detector`` and passed
    as ``BlazeFaceDetector(variant, model_path=...)``.
    """
    if variant not in CONFIGS:
        raise ValueError(f"BlazeFace variant must be one of {sorted(CONFIGS)}, got {variant!r}")
    p = WEIGHTS_DIR / CONFIGS[variant].file
    if not p.is_file():
        raise ModelError(f"BlazeFace model {p} is missing from the installed package; reinstall edge-emotion")
    return p


def ssd_anchors(cfg: BlazeFaceConfig) -> np.ndarray:
    """Anchor centres (A, 2) in 0..1, as MediaPipe's SsdAnchorsCalculator with fixed anchor size."""
    centres = []
    n = len(cfg.strides)
    i = 0
    while i < n:
        # consecutive layers with the same stride share one feature map
        count = 0
        j = i
        while j < n and cfg.strides[j] == cfg.strides[i]:
            count += 2 if cfg.interpolated_aspect > 0 else 1  # aspect 1.0, plus the interpolated scale
            j += 1
        grid = int(np.ceil(cfg.input_size / cfg.strides[i]))
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        c = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(c, count, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float):
    """MediaPipe's blending NMS: each kept face is the score-weighted mean of the boxes it suppresses."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    out = []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        ious = iou_xywh(boxes[top], boxes[remaining])[0]
        group = remaining[ious > threshold]
        if group.size == 0:
            group = remaining[:1]
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kps = (keypoints[group] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, float(scores[top]), kps))
        remaining = remaining[ious <= threshold]
    return out


class BlazeFaceDetector(FaceDetector):
    """BlazeFace on LiteRT (``.tflite``) or ONNX Runtime / TensorRT (exported ``.onnx``/``.engine``)."""

    def __init__(self, variant: str = "full", model_path: str | Path | None = None, score_threshold: float | None = None,
                 threads: int | None = None, providers: list | None = None, max_faces: int = 64) -> None:
        from ..backends import load_backend

        if variant not in CONFIGS:
            raise ValueError(f"BlazeFace variant must be one of {sorted(CONFIGS)}, got {variant!r}")
        self.cfg = CONFIGS[variant]
        self.name = self.cfg.name
        self.model_path = Path(model_path) if model_path else weights_path(variant)
        self.backend = load_backend(self.model_path, threads=threads, providers=providers)
        self.score_threshold = self.cfg.score_threshold if score_threshold is None else score_threshold
        self.max_faces = max_faces
        self.anchors = ssd_anchors(self.cfg)

    def _letterbox(self, frame: np.ndarray):
        """The frame, scaled to fit the square input, centred on black, as RGB in -1..1.
        Only the image region is converted; the padding is written once as -1 (black)."""
        h, w = frame.shape[:2]
        s = self.cfg.input_size
        scale = s / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        rgb = cv2.cvtColor(downscale(frame, (nw, nh)), cv2.COLOR_BGR2RGB)
        out = np.full((s, s, 3), -1.0, np.float32)
        px, py = (s - nw) // 2, (s - nh) // 2
        region = out[py:py + nh, px:px + nw]
        np.multiply(rgb, np.float32(1 / 127.5), out=region, casting="unsafe")
        region -= 1.0
        return out, scale, px, py

    def decode(self, regressors: np.ndarray, logits: np.ndarray):
        """Raw outputs (A, 16) and (A,) -> boxes (A, 4 as x, y, w, h in 0..1 of the input), scores, keypoints (A, 6, 2)."""
        s = float(self.cfg.input_size)
        a = self.anchors
        cx = regressors[:, 0] / s + a[:, 0]
        cy = regressors[:, 1] / s + a[:, 1]
        w = regressors[:, 2] / s
        h = regressors[:, 3] / s
        boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
        kps = regressors[:, 4:16].reshape(-1, 6, 2) / s + a[:, None, :]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        return boxes, scores, kps

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        tensor, scale, px, py = self._letterbox(frame)
        outs = self.backend.infer(tensor[None])
        reg = next(o for o in outs if o.shape[-1] == 16).reshape(-1, 16)
        logit = next(o for o in outs if o.shape[-1] == 1).reshape(-1)
        boxes, scores, kps = self.decode(reg, logit)
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        faces = weighted_nms(boxes[keep], scores[keep], kps[keep], self.cfg.nms_threshold)[: self.max_faces]
        s = self.cfg.input_size
        result = []
        for box, score, kp in faces:
            # input (0..1) -> letterboxed pixels -> frame pixels
            x = (box[0] * s - px) / scale
            y = (box[1] * s - py) / scale
            result.append(FaceBox(x, y, box[2] * s / scale, box[3] * s / scale, score,
                                  np.stack([(kp[:, 0] * s - px) / scale, (kp[:, 1] * s - py) / scale], axis=1)))
        return result
