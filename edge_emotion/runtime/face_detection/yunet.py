"""YuNet (libfacedetection) on LiteRT: a 53 k-parameter detector with three anchor-free levels.

The weights are libfacedetection's own (BSD 3-clause, Shiqi Yu), laid out as a float TFLite file by
:mod:`edge_emotion.export.yunet_rebuild` and shipped in ``weights/`` (see the project's NOTICE). The network takes
a BGR image in 0..255 whose sides are multiples of 32; it is rewritten in memory for each frame shape
(:mod:`..backends.litert_resize`, one interpreter per shape, built on first use). Decoding follows the library:
a face's score is ``sqrt(sigmoid(cls) * sigmoid(obj))``, its box centre is ``(cell + offset) * stride`` and its
size ``exp(log size) * stride``, then plain NMS at IoU 0.3.

Its boxes are not BlazeFace's: they run from the forehead to the chin and are taller than wide, where
BlazeFace's are about square. The emotion classifier's crop framing was measured on BlazeFace boxes, so
:meth:`YuNetDetector.detect` maps each box to the BlazeFace box of the same face (:data:`TO_BLAZEFACE`,
measured on matched faces) unless ``native_boxes=True``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ...errors import ModelError
from ..image import downscale
from .base import HIGH_RES, HIGH_RES_MIN_SIDE, NEAR_CONTEXT, NEAR_INPUT, FaceBox, FaceDetector, iou_xywh, near_regions

log = logging.getLogger(__name__)

WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "face_detection_yunet.tflite"
STRIDES = (8, 16, 32)
ALIGN = 32
# the frame's long side maps to this many network pixels by default (measured: benchmarks/face_detection.py)
DEFAULT_SIDE = 224
# high_res: the pass at the frame's own resolution keeps faces up to this size as the whole-frame pass sees them
# (network pixels); larger ones come from the whole-frame pass. Measured: on a 4096-pixel upscale of the sample photo
# the fine pass finds only pieces of the 850-pixel face (dropped as pieces); at 20 the group photo's 200-pixel faces
# (22 at 224 px over 2,000) came from the coarse pass, whose boxes cost the classifier the left adult's smile
FINE_MAX_INPUT_PX = 40
# YuNet box (x, y, w, h) -> the BlazeFace box of the same face, as fractions of the YuNet box: centre shift (dx, dy)
# in box widths/heights and size (w, h) in box widths/heights. Medians over 227 faces both detectors find (IoU >= 0.5;
# the sample clip, pascal_voc_faces and two scene photos): dy 0.046, w 1.09, h 0.80; dx measured -0.055 on faces
# mostly turned one way in the clip, set to 0 (a mirrored face has the opposite shift)
TO_BLAZEFACE = (0.0, 0.046, 1.09, 0.80)


def _inside_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): the fraction of each box of ``a`` (x, y, w, h) that lies inside each box of ``b``."""
    ix = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(ix, 0, None) * np.clip(iy, 0, None) / np.maximum(a[:, None, 2] * a[:, None, 3], 1e-9)


def _side(n: float) -> int:
    return max(ALIGN, -(-int(round(n)) // ALIGN) * ALIGN)


class _Level:
    __slots__ = ("stride", "score", "box", "kps")

    def __init__(self, stride: int, score: int, box: int, kps: int) -> None:
        self.stride, self.score, self.box, self.kps = stride, score, box, kps


class YuNetDetector(FaceDetector):
    """YuNet face detection on LiteRT: ``detect(frame) -> list[FaceBox]`` (five landmarks each: the subject's
    right eye, left eye, nose tip, right and left mouth corners).

    ``input_side``: the frame's long side maps to this many network pixels (default :data:`DEFAULT_SIDE`; the
    padded sides are multiples of 32); ``None`` runs every frame at its own size, as the library does. Fewer
    pixels run faster and lose small faces.

    ``high_res``: small faces in large frames. ``auto`` adds a pass at the frame's own resolution for frames whose
    long side is at least :data:`HIGH_RES_MIN_SIDE` (its cost follows the pixels), ``on`` for every frame larger
    than ``input_side``, ``off`` for none; faces from both passes are merged by one NMS.
    """

    name = "yunet"

    def __init__(self, model_path: str | Path | None = None, score_threshold: float = 0.8, nms_threshold: float = 0.3,
                 input_side: int | None = DEFAULT_SIDE, threads: int | None = None, max_faces: int = 64,
                 high_res: str = "auto", native_boxes: bool = False, model_content: bytes | None = None) -> None:
        from ..backends.litert_resize import can_resize

        if input_side is not None and (isinstance(input_side, bool) or not isinstance(input_side, (int, np.integer))
                                       or input_side < ALIGN or input_side % ALIGN):
            raise ValueError(f"input_side (detector_side, --detector-side) must be None or a positive multiple of "
                             f"{ALIGN} for YuNet, got {input_side!r}")
        if high_res not in HIGH_RES:
            raise ValueError(f"high_res must be one of {', '.join(HIGH_RES)}, got {high_res!r}")
        if not 0 < score_threshold < 1:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold!r}")
        if not can_resize():
            from ...errors import BackendUnavailableError

            raise BackendUnavailableError("YuNet runs on LiteRT: pip install ai-edge-litert")
        if model_content is None:
            path = Path(model_path) if model_path else WEIGHTS_FILE
            if not path.is_file():
                raise ModelError(f"YuNet model {path} is missing; reinstall edge-emotion")
            model_content = path.read_bytes()
            self.model_path = path
        else:
            self.model_path = Path(model_path or "<yunet in memory>")
        self._content = model_content
        self.score_threshold, self.nms_threshold = float(score_threshold), float(nms_threshold)
        self.input_side = None if input_side is None else int(input_side)
        self.high_res = high_res
        self.threads, self.max_faces, self.native_boxes = threads, int(max_faces), bool(native_boxes)
        self._inputs: dict[tuple[int, int], tuple] = {}
        from ..backends.litert import LiteRTBackend

        # opened as it is first: a corrupt file fails here, in LiteRT's own words, before any rewriting
        self.backend = LiteRTBackend.from_content(model_content, self.model_path, threads=threads)
        shape = self.backend.input_shape
        if len(shape) != 4 or shape[3] != 3:
            raise ModelError(f"{self.model_path}: not a YuNet model (input {shape}, expected 1 x H x W x 3)")
        self._add_input(shape[1], shape[2], self.backend)

    def _input(self, height: int, width: int):
        if (height, width) not in self._inputs:
            from ..backends.litert import LiteRTBackend

            self._add_input(height, width, LiteRTBackend.resized(self._content, height, width, self.model_path,
                                                                 threads=self.threads))
            log.debug("YuNet: built a %dx%d input", height, width)
        return self._inputs[(height, width)]

    def _add_input(self, height: int, width: int, backend) -> None:
        """Cache ``backend`` for this input size with the output index of each level's score, box and landmarks."""
        outs = backend.output_shapes
        levels = []
        for stride in STRIDES:
            gh, gw = height // stride, width // stride
            idx = {s[-1]: i for i, s in enumerate(outs) if s[1:3] == (gh, gw)}
            if sorted(idx) != [1, 4, 10]:
                raise ModelError(f"{self.model_path}: not a YuNet model from edge_emotion.export.yunet_rebuild "
                                 f"(outputs {outs})")
            levels.append(_Level(stride, idx[1], idx[4], idx[10]))
        self._inputs[(height, width)] = (backend, levels)

    def input_shape_for(self, width: int, height: int, side: int | None = None) -> tuple[tuple[int, int], float]:
        """The network input (height, width) for a frame of ``width`` x ``height`` whose long side maps to ``side``
        network pixels (``None``: the frame's own size), and the frame's scale in it."""
        scale = 1.0 if side is None else side / max(width, height)
        return (_side(height * scale), _side(width * scale)), scale

    def _candidates(self, view: np.ndarray, side: int | None):
        """Boxes (N, 4: x, y, w, h), scores (N,) and landmarks (N, 5, 2) above the threshold, in ``view`` pixels."""
        h, w = view.shape[:2]
        (ih, iw), scale = self.input_shape_for(w, h, side)
        backend, levels = self._input(ih, iw)
        nw, nh = min(iw, max(1, round(w * scale))), min(ih, max(1, round(h * scale)))
        tensor = np.zeros((1, ih, iw, 3), np.float32)
        tensor[0, :nh, :nw] = view if (nw, nh) == (w, h) else downscale(view, (nw, nh))
        outs = backend.infer(tensor)
        t2 = self.score_threshold ** 2
        boxes, scores, kps = [np.zeros((0, 4))], [np.zeros(0)], [np.zeros((0, 5, 2))]
        for lv in levels:
            prob = outs[lv.score][0, :, :, 0]
            r, c = np.nonzero(prob > t2)
            if not r.size:
                continue
            s = lv.stride
            b = outs[lv.box][0, r, c]
            k = outs[lv.kps][0, r, c].reshape(-1, 5, 2)
            cx, cy = (c + b[:, 0]) * s, (r + b[:, 1]) * s
            bw, bh = np.exp(np.clip(b[:, 2], -10, 10)) * s, np.exp(np.clip(b[:, 3], -10, 10)) * s
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
            kps.append(np.stack([(k[:, :, 0] + c[:, None]) * s, (k[:, :, 1] + r[:, None]) * s], axis=2))
            scores.append(np.sqrt(prob[r, c]))
        return np.concatenate(boxes) / scale, np.concatenate(scores), np.concatenate(kps) / scale

    def _faces(self, boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray) -> list[FaceBox]:
        if not len(scores):
            return []
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold)
        keep = np.asarray(keep, int).reshape(-1)[: self.max_faces]
        return [self._face(boxes[i], float(scores[i]), kps[i]) for i in keep]

    def uses_high_res(self, width: int, height: int) -> bool:
        """Whether :meth:`detect` adds a pass at the frame's own resolution for a frame of this size."""
        long = max(width, height)
        return self.input_side is not None and long > self.input_side and (
            self.high_res == "on" or (self.high_res == "auto" and long >= HIGH_RES_MIN_SIDE))

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        h, w = frame.shape[:2]
        whole = self._candidates(frame, self.input_side)
        if not self.uses_high_res(w, h):
            return self._faces(*whole)
        # high_res: the frame at its own resolution finds the small faces, and draws sharper boxes than the whole-frame
        # pass for every face it sees whole; the whole-frame pass keeps the faces too large for it, which it sees only
        # in pieces. A fine detection is kept up to FINE_MAX_INPUT_PX as the whole-frame pass sees it, unless it lies
        # mostly inside a whole-frame face at least twice its size (a piece); a whole-frame face that a kept fine
        # detection matches (IoU >= 0.5) gives way to it.
        fine = self._candidates(frame, None)
        fsize = np.maximum(fine[0][:, 2], fine[0][:, 3])
        keep = fsize <= FINE_MAX_INPUT_PX * max(w, h) / self.input_side
        if len(whole[1]) and keep.any():
            wsize = np.maximum(whole[0][:, 2], whole[0][:, 3])
            piece = (_inside_fraction(fine[0], whole[0]) >= 0.5) & (wsize[None, :] >= 2 * fsize[:, None])
            keep &= ~piece.any(axis=1)
            replaced = (iou_xywh(fine[0][keep], whole[0]) >= 0.5).any(axis=0)
            whole = tuple(x[~replaced] for x in whole)
        return self._faces(*(np.concatenate([a, b[keep]]) for a, b in zip(whole, fine)))

    @property
    def can_detect_near(self) -> bool:
        return True

    def detect_near(self, frame: np.ndarray, boxes: Sequence[FaceBox], context: float = NEAR_CONTEXT,
                    size: int = NEAR_INPUT) -> list[FaceBox]:
        """Faces near the given boxes only (tracker-guided detection between full detections): each box's square
        region, ``context`` box sides added on every side, runs at ``size`` network pixels; one NMS merges them."""
        found = [np.zeros((0, 4))], [np.zeros(0)], [np.zeros((0, 5, 2))]
        for x0, y0, x1, y1 in near_regions(frame.shape, boxes, context):
            bx, sc, kp = self._candidates(frame[y0:y1, x0:x1], size)
            found[0].append(bx + [x0, y0, 0, 0])
            found[1].append(sc)
            found[2].append(kp + [x0, y0])
        return self._faces(*(np.concatenate(f) for f in found))

    def _face(self, box: np.ndarray, score: float, kps: np.ndarray) -> FaceBox:
        x, y, w, h = (float(v) for v in box)
        if not self.native_boxes:
            dx, dy, sw, sh = TO_BLAZEFACE
            cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
            w, h = sw * w, sh * h
            x, y = cx - w / 2, cy - h / 2
        return FaceBox(x, y, w, h, score, kps.astype(np.float32))
