"""``EmotionDetector``: frames in, faces with emotions out.

    >>> from edge_emotion import EmotionDetector
    >>> faces = EmotionDetector().detect(frame)      # frame: BGR uint8 (OpenCV convention)
    >>> faces[0].emotion, faces[0].box

All faces of a frame, and of a batch of frames, are classified in ONE batched call.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import InputError
from .classifier import EmotionClassifier
from .face_detection import FaceBox, FaceDetector, create_face_detector
from .image import as_bgr
from .results import Emotion, Face
from .zoo import resolve_model

if TYPE_CHECKING:
    from .stream import Stream

log = logging.getLogger(__name__)

__all__ = ["EmotionDetector"]


class EmotionDetector:
    """Face detection + emotion classification on LiteRT, ONNX Runtime or TensorRT.

    Args:
        model: ``None`` for the bundled default, a bundled model name, or a path to a
            ``.tflite`` / ``.onnx`` / ``.engine`` (or ``.keras`` with the train extra) file.
        backend: ``auto`` (from the file's suffix and what is installed), ``litert``,
            ``onnxruntime`` or ``tensorrt``; or ``fastest``: for a bundled model, the backend and
            artifact measured fastest on this device, measured once and cached per device and model
            (:func:`edge_emotion.doctor.fastest_backend`); for a model file, the same as ``auto``
            (a file runs on the one backend its format names).
        face_detector: ``auto`` (YuNet, Haar fallback), ``yunet``, ``blazeface`` (full-range),
            ``blazeface_full_sparse``, ``blazeface_short``, ``haar``, or a :class:`FaceDetector` instance.
        threads: CPU threads for each runtime (default: up to 4).
        providers: ONNX Runtime execution providers, passed through (e.g.
            ``["CUDAExecutionProvider", "CPUExecutionProvider"]``).
        margin: extra context around each face box, as a fraction of its size
            (default: the model's metadata ``crop_margin``).
        align: rotate crops so the eyes are level (needs landmarks; YuNet and BlazeFace give them).
            Off by default: on FER-2013 test faces it did not help (see README).
        shift_y: move the crop centre by this many box heights (negative: up), so crops are
            framed like the training faces (default: the model's metadata ``crop_shift_y``).
        min_face_score: face-detector score threshold (default: the detector's own).
        max_faces: at most this many faces per frame, best first.
        high_res: small faces in large frames: ``auto`` for frames whose long side is at least 1,000 px,
            ``on`` for every frame larger than the detector's input, ``off`` never. YuNet then runs the frame at
            its own resolution (one pass), BlazeFace adds a pyramid of overlapping tiles (a detector call per
            tile, about 17 for a 1000 x 1000 frame); both measured in the README.
        detector_side: the face detector's network pixels for the frame's long side (a multiple of 32;
            default: YuNet 224, BlazeFace full-range 192). Fewer run faster and lose small faces, more find
            smaller faces at a higher cost; measured per side in the README.

    Thread safety: one instance serialises its calls with a lock, so it may be shared by
    threads; for parallel throughput give each thread its own instance.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", face_detector: str | FaceDetector = "auto",
                 threads: int | None = None, providers: list | None = None, margin: float | None = None,
                 align: bool = False, min_face_score: float | None = None, max_faces: int = 64,
                 shift_y: float | None = None, high_res: str = "auto", detector_side: int | None = None) -> None:
        if backend == "fastest":  # measured once per device and model, then cached (edge_emotion.doctor)
            from ..doctor import resolve_fastest

            backend, path, providers = resolve_fastest(model, threads=threads, providers=providers)
        else:
            path = resolve_model(model, backend, providers)
        self.classifier = EmotionClassifier(path, backend, threads=threads, providers=providers)
        self.metadata = self.classifier.meta
        self.model_path = path
        det_kwargs: dict = {"max_faces": max_faces}
        if high_res != "auto":
            det_kwargs["high_res"] = high_res
        if min_face_score is not None:
            det_kwargs["score_threshold"] = min_face_score
        if detector_side is not None:
            det_kwargs["input_side"] = detector_side
        self.face_detector = create_face_detector(face_detector, threads=threads, providers=providers, **det_kwargs)
        self.margin = self.metadata.crop_margin if margin is None else margin
        self.shift_y = self.metadata.crop_shift_y if shift_y is None else shift_y
        self.align = align
        self.max_faces = max_faces
        self._lock = threading.RLock()
        log.info("EmotionDetector: model %s on %s, face detector %s", path.name, self.classifier.backend.name,
                 self.face_detector.name)

    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    def close(self) -> None:
        """Release the runtimes' native resources (TensorRT GPU buffers and streams) of the classifier and
        the face detector. Idempotent; CPU runtimes need no closing. ``with EmotionDetector(...) as d:``
        closes on exit."""
        self.classifier.close()
        det_backend = getattr(self.face_detector, "backend", None)
        if det_backend is not None:
            det_backend.close()

    def __enter__(self) -> "EmotionDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API
    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in one frame (BGR uint8; grayscale and BGRA accepted), best first. No face: ``[]``."""
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in several frames; every face of every frame goes through the classifier in one call."""
        bgr = self._frames(frames, "detect_batch")
        with self._lock:
            return self._classify_boxes(bgr, self._detect_boxes(bgr))

    def detect_faces(self, frames: Sequence[np.ndarray],
                     near: Sequence[Sequence[FaceBox]] | None = None) -> list[list[FaceBox]]:
        """Step 1 of :meth:`detect_batch`: the face detector's boxes for each frame (best first, at most
        ``max_faces``), no emotions. Pipelines that detect on some frames and track on others call
        this, then :meth:`classify_faces`.

        ``near[i]``: search frame ``i`` only around these boxes (e.g. last frame's faces): tracker-guided
        detection, a fraction of a full detection's cost. Only where :attr:`can_detect_near`; elsewhere
        the boxes are returned unchanged (held)."""
        bgr = self._frames(frames, "detect_faces")
        with self._lock:
            if near is None:
                return self._detect_boxes(bgr)
            if len(near) != len(bgr):
                raise InputError(f"detect_faces got {len(bgr)} frames but boxes for {len(near)}")
            if not self.can_detect_near:
                return [list(b) for b in near]
            return [self.face_detector.detect_near(f, [_as_facebox(b, "a box") for b in bs]) if bs else []
                    for f, bs in zip(bgr, near)]

    @property
    def can_detect_near(self) -> bool:
        """Whether the face detector can search near known boxes at a fraction of a full detection's cost."""
        return bool(getattr(self.face_detector, "can_detect_near", False))

    def classify_faces(self, frames: Sequence[np.ndarray],
                       boxes: Sequence[Sequence[FaceBox | tuple[float, float, float, float]]]) -> list[list[Face]]:
        """Step 2 of :meth:`detect_batch`: crop each box from its frame (margin, framing and alignment
        as configured) and classify every crop of every frame in ONE batched classifier call.

        ``boxes[i]`` holds frame ``i``'s faces: :class:`FaceBox` from :meth:`detect_faces` (or any
        face detector), or plain ``(x, y, w, h)`` tuples in frame pixels. Boxes that fall outside
        their frame are left out.
        """
        bgr = self._frames(frames, "classify_faces")
        if len(boxes) != len(bgr):
            raise InputError(f"classify_faces: {len(bgr)} frame(s) but {len(boxes)} box list(s); give one list per frame")
        fbs = [[_as_facebox(b, f"box {j} of frame {i}") for j, b in enumerate(bs)] for i, bs in enumerate(boxes)]
        with self._lock:
            return self._classify_boxes(bgr, fbs)

    def classify(self, face_crops: Sequence[np.ndarray] | np.ndarray) -> list[Emotion]:
        """Emotions for face crops you cut yourself (BGR or grayscale uint8, any size), in one batched call.
        Each :class:`Emotion` has the same ``emotion``, ``confidence`` and ``probabilities`` fields
        (and ``to_dict()`` rounding) as a :class:`Face`."""
        if isinstance(face_crops, np.ndarray):
            if face_crops.ndim == 4 or (face_crops.ndim == 3 and face_crops.shape[-1] not in (1, 3, 4)):
                face_crops = list(face_crops)
            else:
                face_crops = [face_crops]
        crops = [as_bgr(c, f"face crop {i}") for i, c in enumerate(face_crops)]
        with self._lock:
            probs = self.classifier.predict(self.classifier.preprocess(crops))
        return self.classifier.to_emotions(probs)

    def stream(self, source, **kwargs) -> "Stream":
        """Results from one source or several, as they arrive: see :class:`~edge_emotion.runtime.stream.Stream`.

        ``source``: a camera index, a video file (``str`` or ``os.PathLike``), a URL (RTSP, HTTP,
        TCP, ...), a GStreamer pipeline, or a list (or ``{name: source}`` dict) of these. A file
        delivers every frame once and ends; live sources keep only the newest frame. With several
        sources, all faces of a tick go through the classifier in one call and each
        :class:`~edge_emotion.runtime.results.FrameResult` names its ``source``.
        """
        from .stream import Stream

        return Stream(self, source, **kwargs)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _frames(frames: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
        if isinstance(frames, np.ndarray) and frames.ndim == 4:
            frames = list(frames)
        if not isinstance(frames, (list, tuple)):
            raise InputError(f"{what} takes a list of frames, got {type(frames).__name__}")
        return [as_bgr(f, f"frame {i}") for i, f in enumerate(frames)]

    def _detect_boxes(self, frames: list[np.ndarray]) -> list[list[FaceBox]]:
        return [self.face_detector.detect(f)[: self.max_faces] for f in frames]

    def _classify_boxes(self, frames: list[np.ndarray], boxes: list[list[FaceBox]]) -> list[list[Face]]:
        prep = self.classifier.preprocessing
        crops, owners = [], []
        for i, (frame, fbs) in enumerate(zip(frames, boxes)):
            h, w = frame.shape[:2]
            for fb in fbs:
                box = _clip_box(fb, w, h)
                if box is None:
                    continue
                crops.append(prep.crop(frame, (fb.x, fb.y, fb.w, fb.h), fb.landmarks, self.align, self.margin, self.shift_y))
                owners.append((i, box, fb))
        probs = self.classifier.predict(self.classifier.preprocess(crops))
        out: list[list[Face]] = [[] for _ in frames]
        for (i, box, fb), emo in zip(owners, self.classifier.to_emotions(probs)):
            lm = None if fb.landmarks is None else [(float(x), float(y)) for x, y in fb.landmarks]
            out[i].append(Face(box, float(fb.score), emo.emotion, emo.confidence, emo.probabilities, lm))
        return out


def _as_facebox(b: object, what: str) -> FaceBox:
    if isinstance(b, FaceBox):
        return b
    try:
        x, y, w, h = (float(v) for v in b)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(f"{what} is {b!r}; expected a FaceBox or an (x, y, w, h) tuple in frame pixels") from None
    if not all(np.isfinite([x, y, w, h])) or w <= 0 or h <= 0:
        raise InputError(f"{what} is {(x, y, w, h)}; width and height must be positive and finite")
    return FaceBox(x, y, w, h, 1.0)


def _clip_box(fb: FaceBox, w: int, h: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, int(round(fb.x))), max(0, int(round(fb.y)))
    x1, y1 = min(w, int(round(fb.x + fb.w))), min(h, int(round(fb.y + fb.h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)
