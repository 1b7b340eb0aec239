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
from typing import Sequence

import cv2
import numpy as np

from ...errors import ModelError
from ...formats import FORMATS, all_precisions
from ..image import downscale
from .base import HIGH_RES, HIGH_RES_MIN_SIDE, NEAR_CONTEXT, NEAR_INPUT, FaceBox, FaceDetector, iou_xywh, near_regions
from .tiling import detect_tiled, merge

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# The bundled weights are float TFLite; `edge-emotion export-detector` writes the formats other runtimes load, and
# an int8 TFLite (export/detector.py: rebuilt, calibrated on real frames, validated against the bundled one)
DETECTOR_FORMATS = tuple(f.name for f in FORMATS if f.backend not in (None, "keras"))
DETECTOR_PRECISIONS = all_precisions()


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
    # the input may be rewritten to any height/width that is a multiple of this (None: square only);
    # full-range halves its input five times (192 -> 6), so both sides must be multiples of 32
    align: int | None = None


CONFIGS = {
    "short": BlazeFaceConfig("blazeface_short", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 0.1484375, 0.75, 1.0, 0.5),
    "full": BlazeFaceConfig("blazeface_full", "face_detection_full_range.tflite", 192, (4,), 0.1484375, 0.75, 0.0, 0.6,
                            align=32),
    # the same full-range network with sparse weights (XNNPACK has sparse kernels): same anchors and outputs
    "full_sparse": BlazeFaceConfig("blazeface_full_sparse", "face_detection_full_range_sparse.tflite", 192, (4,),
                                   0.1484375, 0.75, 0.0, 0.6, align=32),
}
FITS = ("auto", "aspect", "square")
# the smallest face full-range finds reliably, in input pixels (the sample face is missed at 11-12 px, found from 14)
MIN_FACE_INPUT_PX = 14
# fit="aspect" keeps at least this much black (input pixels) on each side of the frame's short side. With a
# tight fit (16:9 at 128x192, 10 px) scores ran ~0.09 lower in logit than at 192x192 and three
# pascal_voc_faces faces near the 0.6 threshold were lost (38/43); with 16 px the recall is the square
# model's (41/43, no unmatched detections) at the same threshold.
ASPECT_BORDER = 16


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


def ssd_anchors(cfg: BlazeFaceConfig, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Anchor centres (A, 2) as (x, y) in 0..1 of the input, as MediaPipe's SsdAnchorsCalculator with fixed
    anchor size, for an input of ``height`` x ``width`` (default: the model's square input)."""
    height = height or cfg.input_size
    width = width or cfg.input_size
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
        gh, gw = int(np.ceil(height / cfg.strides[i])), int(np.ceil(width / cfg.strides[i]))
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        c = np.stack([(xs + 0.5) / gw, (ys + 0.5) / gh], axis=-1).reshape(-1, 1, 2)
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


class _Input:
    """One input size of the detector: its backend and its anchors in input pixels."""

    def __init__(self, backend, cfg: BlazeFaceConfig, height: int, width: int) -> None:
        self.backend, self.height, self.width = backend, height, width
        self.anchors = ssd_anchors(cfg, height, width) * np.array([width, height], np.float32)


class BlazeFaceDetector(FaceDetector):
    """BlazeFace on LiteRT (``.tflite``) or ONNX Runtime / TensorRT (exported ``.onnx``/``.engine``).

    ``fit`` decides the network's input for a frame. ``square``: the frame is letterboxed into the model's
    192 x 192 input, as MediaPipe does. ``aspect``: the long side still maps to 192, the short side plus a
    black border of :data:`ASPECT_BORDER` px on each side to the next multiple of 32 (a 16:9 frame runs at
    160 x 192, a sixth fewer pixels at the same scale, so the same faces), through a copy of the model
    rewritten for that size (:mod:`..backends.litert_resize`, one per shape, built on first use).
    ``auto``: ``aspect`` where the variant and backend allow it (full-range on LiteRT), else ``square``.

    ``input_side`` maps the frame's long side to this many network pixels instead of the model's 192 (a multiple
    of 32; needs ``fit='aspect'``): fewer pixels run faster and lose small faces (a face must span about
    :data:`MIN_FACE_INPUT_PX` input pixels), more pixels find smaller faces at a higher cost (measured per side:
    ``benchmarks/face_detection.py``, README).

    ``high_res`` adds a pyramid of overlapping ``tile``-pixel tiles to the whole-frame pass (:mod:`.tiling`),
    for small faces in large frames (crowds, group photos): ``on``, ``off``, or ``auto`` = on for frames whose
    long side is at least :data:`HIGH_RES_MIN_SIDE`. It costs one network call per tile.
    """

    def __init__(self, variant: str = "full", model_path: str | Path | None = None, score_threshold: float | None = None,
                 threads: int | None = None, providers: list | None = None, max_faces: int = 64, fit: str = "auto",
                 high_res: str = "auto", tile: int = 384, input_side: int | None = None) -> None:
        from ..backends import load_backend

        if variant not in CONFIGS:
            raise ValueError(f"BlazeFace variant must be one of {sorted(CONFIGS)}, got {variant!r}")
        if fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
        if high_res not in HIGH_RES:
            raise ValueError(f"high_res must be one of {', '.join(HIGH_RES)}, got {high_res!r}")
        self.high_res, self.tile = high_res, int(tile)
        self.cfg = CONFIGS[variant]
        self.name = self.cfg.name
        self.model_path = Path(model_path) if model_path else weights_path(variant)
        self.backend = load_backend(self.model_path, threads=threads, providers=providers)
        self.threads = threads
        self.score_threshold = self.cfg.score_threshold if score_threshold is None else score_threshold
        self.max_faces = max_faces
        s = self.cfg.input_size
        self._inputs = {(s, s): _Input(self.backend, self.cfg, s, s)}
        self.fit = self._resolve_fit(fit)
        self.input_side = self._check_side(input_side)

    def _check_side(self, side: int | None) -> int:
        s, a = self.cfg.input_size, self.cfg.align
        if side is None:
            return s
        is_int = isinstance(side, (int, np.integer)) and not isinstance(side, bool)
        if is_int and side == s:
            return s
        if a is None:
            raise ValueError(f"{self.cfg.name} has several anchor grids and runs at its {s} px input only; "
                             f"input_side (detector_side, --detector-side) must be None or {s}, got {side!r}")
        if not is_int or side < a or side % a:
            raise ValueError(f"input_side (detector_side, --detector-side) must be a positive multiple of {a} "
                             f"for {self.cfg.name}, got {side!r}")
        if self.fit != "aspect":
            raise ValueError(f"input_side={side} rewrites the network's input, which needs fit='aspect' (full-range "
                             f"BlazeFace on LiteRT); this detector runs fit={self.fit!r}")
        return int(side)

    def _resolve_fit(self, fit: str) -> str:
        from ..backends.litert_resize import can_resize

        why = None
        if self.cfg.align is None:
            why = f"the {self.cfg.name} model has several anchor grids"
        elif self.backend.name != "litert":
            why = f"{self.backend.name} runs the exported model at its fixed square size"
        elif not can_resize():
            why = "the TFLite schema reader (ai-edge-litert) is not installed"
        if why is None:
            return "square" if fit == "square" else "aspect"
        if fit == "aspect":
            raise ValueError(f"fit='aspect' is not available here: {why}; use fit='square' or 'auto'")
        return "square"

    def input_shape_for(self, width: int, height: int) -> tuple[int, int]:
        """The network input (height, width) this detector uses for a frame or region of ``width`` x ``height``."""
        if self.fit == "square":
            return self.cfg.input_size, self.cfg.input_size
        s = self.input_side
        scale = s / max(width, height)
        a = self.cfg.align

        def side(n: int) -> int:  # the scaled side plus the black border, up to the next multiple of `align`
            return min(s, -(-(max(1, round(n * scale)) + 2 * ASPECT_BORDER) // a) * a)

        return side(height), side(width)

    def _input(self, height: int, width: int) -> _Input:
        key = (height, width)
        if key not in self._inputs:
            from ..backends.litert import LiteRTBackend

            backend = LiteRTBackend.resized(self.model_path.read_bytes(), height, width, self.model_path,
                                            threads=self.threads)
            self._inputs[key] = _Input(backend, self.cfg, height, width)
            log.debug("BlazeFace: built a %dx%d input for %s", height, width, self.model_path.name)
        return self._inputs[key]

    def _letterbox(self, frame: np.ndarray, shape: tuple[int, int] | None = None):
        """The frame scaled so its long side fills the input and centred on black, as RGB in -1..1; the input
        is ``shape`` = (height, width), by default the square model input. Only the image region is
        converted; the padding is written once as -1 (black). Returns (tensor, scale, px, py)."""
        h, w = frame.shape[:2]
        ih, iw = shape or (self.cfg.input_size, self.cfg.input_size)
        scale = min(iw / w, ih / h)
        nw, nh = min(iw, max(1, round(w * scale))), min(ih, max(1, round(h * scale)))
        rgb = cv2.cvtColor(downscale(frame, (nw, nh)), cv2.COLOR_BGR2RGB)
        out = np.full((ih, iw, 3), -1.0, np.float32)
        px, py = (iw - nw) // 2, (ih - nh) // 2
        region = out[py:py + nh, px:px + nw]
        np.multiply(rgb, np.float32(1 / 127.5), out=region, casting="unsafe")
        region -= 1.0
        return out, scale, px, py

    def decode(self, regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray | None = None):
        """Raw outputs (A, 16) and (A,) -> the candidates scoring at least ``score_threshold``: boxes (N, 4 as x,
        y, w, h in input pixels), scores (N,), keypoints (N, 6, 2). ``anchors``: (A, 2) centres in input
        pixels (default: the square input's). Only the candidates are decoded."""
        a = self._inputs[(self.cfg.input_size,) * 2].anchors if anchors is None else anchors
        t = min(max(self.score_threshold, 1e-7), 1 - 1e-7)
        keep = np.flatnonzero(logits >= np.log(t / (1 - t)))
        reg, a = regressors[keep], a[keep]
        cx, cy = reg[:, 0] + a[:, 0], reg[:, 1] + a[:, 1]
        boxes = np.stack([cx - reg[:, 2] / 2, cy - reg[:, 3] / 2, reg[:, 2], reg[:, 3]], axis=1)
        kps = reg[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -80, 80)))
        return boxes, scores, kps

    def uses_tiles(self, width: int, height: int) -> bool:
        """Whether :meth:`detect` adds the tile pyramid for a frame of this size."""
        if self.high_res == "auto":
            return max(width, height) >= HIGH_RES_MIN_SIDE
        return self.high_res == "on" and max(width, height) > self.tile

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        if self.uses_tiles(frame.shape[1], frame.shape[0]):
            floor = MIN_FACE_INPUT_PX * max(frame.shape[:2]) / self.input_side  # the whole-frame pass's smallest face
            return detect_tiled(self.detect_region, frame, weighted_nms, self.cfg.nms_threshold, self.tile,
                                whole_frame_floor=floor)[: self.max_faces]
        return self.detect_region(frame)

    @property
    def can_detect_near(self) -> bool:
        """Whether :meth:`detect_near` runs at a smaller input than a full detection (LiteRT, ``fit='aspect'``)."""
        return self.fit == "aspect"

    def detect_near(self, frame: np.ndarray, boxes: Sequence[FaceBox], context: float = NEAR_CONTEXT,
                    size: int = NEAR_INPUT) -> list[FaceBox]:
        """Faces near the given boxes only (tracker-guided detection between full detections): each box's
        square region, ``context`` box sides added on every side, runs through a ``size`` x ``size`` input
        (a face a third of a 96-pixel input is well above the detector's floor). A face that left its region
        is not found; the next full detection finds it again. Overlapping regions are merged by NMS."""
        shape = (size, size) if self.fit == "aspect" else None
        found: list[FaceBox] = []
        for region in near_regions(frame.shape, boxes, context):
            found += self.detect_region(frame, region, shape=shape)
        return merge(found, weighted_nms, self.cfg.nms_threshold)[: self.max_faces]

    def detect_region(self, frame: np.ndarray, region: tuple[int, int, int, int] | None = None,
                      shape: tuple[int, int] | None = None) -> list[FaceBox]:
        """Faces inside ``region`` = (x0, y0, x1, y1) of ``frame`` (default: all of it), in frame pixels.
        ``shape``: the network input (height, width) to use; by default :meth:`input_shape_for` the region."""
        x0, y0, x1, y1 = region or (0, 0, frame.shape[1], frame.shape[0])
        view = frame[y0:y1, x0:x1]
        if view.size == 0:
            return []
        inp = self._input(*(shape or self.input_shape_for(view.shape[1], view.shape[0])))
        tensor, scale, px, py = self._letterbox(view, (inp.height, inp.width))
        outs = inp.backend.infer(tensor[None])
        reg = next(o for o in outs if o.shape[-1] == 16).reshape(-1, 16)
        logit = next(o for o in outs if o.shape[-1] == 1).reshape(-1)
        boxes, scores, kps = self.decode(reg, logit, inp.anchors)
        if not len(scores):
            return []
        faces = weighted_nms(boxes, scores, kps, self.cfg.nms_threshold)[: self.max_faces]
        # input pixels -> region pixels -> frame pixels
        ox, oy = x0 - px / scale, y0 - py / scale
        return [FaceBox(box[0] / scale + ox, box[1] / scale + oy, box[2] / scale, box[3] / scale, score,
                        np.stack([kp[:, 0] / scale + ox, kp[:, 1] / scale + oy], axis=1))
                for box, score, kp in faces]
