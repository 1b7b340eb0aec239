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
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError
from .classifier import EmotionClassifier
from .crop import crop_face
from .face_detection import FaceBox, FaceDetector, create_face_detector
from .image import as_bgr
from .results import Emotion, Face
from .zoo import resolve_model

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
        face_detector: ``auto`` (BlazeFace full-range, Haar fallback), ``blazeface_full``,
            ``blazeface_short``, ``haar``, or a :class:`FaceDetector` instance.
        threads: CPU threads for each runtime (default: up to 4).
        providers: ONNX Runtime execution providers, passed through (e.g.
            ``["CUDAExecutionProvider", "CPUExecutionProvider"]``).
        margin: extra context around each face box, as a fraction of its size
            (default: the model's metadata ``crop_margin``).
        align: rotate crops so the eyes are level (needs landmarks; BlazeFace gives them).
            Off by default: on FER-2013 test faces it did not help (see README).
        shift_y: move the crop centre by this many box heights (negative: up), so crops are
            framed like the training faces (default: the model's metadata ``crop_shift_y``).
        min_face_score: face-detector score threshold (default: the detector's own).
        max_faces: at most this many faces per frame, best first.

    Thread safety: one instance serialises its calls with a lock, so it may be shared by
    threads; for parallel throughput give each thread its own instance.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", face_detector: str | FaceDetector = "auto",
                 threads: int | None = None, providers: list | None = None, margin: float | None = None,
                 align: bool = False, min_face_score: float | None = None, max_faces: int = 64,
                 shift_y: float | None = None) -> None:
        if backend == "fastest":  # measured once per device and model, then cached (edge_emotion.doctor)
            from ..doctor import resolve_fastest

            backend, path, providers = resolve_fastest(model, threads=threads, providers=providers)
        else:
            path = resolve_model(model, backend, providers)
        self.classifier = EmotionClassifier(path, backend, threads=threads, providers=providers)
        self.metadata = self.classifier.meta
        self.model_path = path
        det_kwargs: dict = {"max_faces": max_faces}
        if min_face_score is not None:
            det_kwargs["score_threshold"] = min_face_score
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
        if isinstance(frames, np.ndarray) and frames.ndim == 4:
            frames = list(frames)
        if not isinstance(frames, (list, tuple)):
            raise InputError(f"detect_batch takes a list of frames, got {type(frames).__name__}")
        bgr = [as_bgr(f, f"frame {i}") for i, f in enumerate(frames)]
        with self._lock:
            boxes = [self.face_detector.detect(f)[: self.max_faces] for f in bgr]
            return self._classify_boxes(bgr, boxes)

    def classify(self, face_crops: Sequence[np.ndarray] | np.ndarray) -> list[Emotion]:
        """Emotions for face crops you cut yourself (BGR or grayscale uint8, any size), in one batched call."""
        if isinstance(face_crops, np.ndarray):
            if face_crops.ndim == 4 or (face_crops.ndim == 3 and face_crops.shape[-1] not in (1, 3, 4)):
                face_crops = list(face_crops)
            else:
                face_crops = [face_crops]
        crops = [as_bgr(c, f"face crop {i}") for i, c in enumerate(face_crops)]
        with self._lock:
            probs = self.classifier.predict(self.classifier.preprocess(crops))
        return self.classifier.to_emotions(probs)

    # ------------------------------------------------------------------ internals
    def _classify_boxes(self, frames: list[np.ndarray], boxes: list[list[FaceBox]]) -> list[list[Face]]:
        size = self.metadata.input_size
        crops, owners = [], []
        for i, (frame, fbs) in enumerate(zip(frames, boxes)):
            h, w = frame.shape[:2]
            for fb in fbs:
                box = _clip_box(fb, w, h)
                if box is None:
                    continue
                crops.append(crop_face(frame, (fb.x, fb.y, fb.w, fb.h), size, self.margin, fb.landmarks, self.align, self.shift_y))
                owners.append((i, box, fb))
        probs = self.classifier.predict(self.classifier.preprocess(crops))
        out: list[list[Face]] = [[] for _ in frames]
        for (i, box, fb), emo in zip(owners, self.classifier.to_emotions(probs)):
            lm = None if fb.landmarks is None else [(float(x), float(y)) for x, y in fb.landmarks]
            out[i].append(Face(box, float(fb.score), emo.label, emo.confidence, emo.probabilities, lm))
        return out

    def stream(self, source, **kwargs) -> Iterable:
        """Per-frame results from a camera index, URL or video file; see :mod:`edge_emotion.runtime.stream`."""
        from .stream import run_stream

        return run_stream(self, source, **kwargs)


def _clip_box(fb: FaceBox, w: int, h: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, int(round(fb.x))), max(0, int(round(fb.y)))
    x1, y1 = min(w, int(round(fb.x + fb.w))), min(h, int(round(fb.y + fb.h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)
