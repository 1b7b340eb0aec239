"""Streams: one source or several, each read on its own thread; per tick, every source's newest
frame is detected and all their faces are classified in ONE batched call.

    >>> for result in EmotionDetector().stream(["cam_a.mp4", "rtsp://10.0.0.7/stream"]):
    ...     print(result.source, result.index, [f.emotion for f in result.faces])

Sources are described in :mod:`edge_emotion.runtime.sources` (kinds, back-off, stalls). Track
IDs, smoothing, FPS and dropped-frame counts are per source. A source that ends or fails is
logged and the others go on; with several sources, a :class:`SourceError` naming every source
that failed is raised once the last one has ended.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterator

from ..errors import InputError, SourceError
from .face_detection.base import FaceBox
from .image import as_bgr
from .results import FrameResult
from .sources import Frame, FrameSource, SourceStatus
from .tracking import IoUTracker

log = logging.getLogger(__name__)

__all__ = ["Stream", "FrameResult", "FrameSource", "SourceStatus"]


class _SourcePipeline:
    """One source's state: detection every N frames, IoU tracks, smoothing and FPS."""

    def __init__(self, src: FrameSource, detect_every: int, smoothing: float | None) -> None:
        self.src = src
        self.detect_every = detect_every
        self.tracker = IoUTracker(smoothing=smoothing, max_age=max(15, 2 * detect_every))
        self.n = 0
        self.boxes: list[FaceBox] = []
        self.delivered = 0
        self.done = False
        self.fps = 0.0
        self.last_faces = 0
        self._t_prev: float | None = None

    def needs_detection(self) -> bool:
        return self.n % self.detect_every == 0

    def tick_fps(self, now: float) -> float:
        if self._t_prev is not None:
            inst = 1.0 / max(now - self._t_prev, 1e-6)
            self.fps = inst if self.delivered == 1 else 0.9 * self.fps + 0.1 * inst
        self._t_prev = now
        return self.fps


def _named_sources(sources: Any) -> tuple[list[tuple[str | None, Any]], bool]:
    if isinstance(sources, dict):
        items = [(str(k), v) for k, v in sources.items()]
    elif isinstance(sources, (list, tuple)):
        items = [(None, s) for s in sources]
    else:
        return [(None, sources)], True
    if not items:
        raise InputError("stream() got an empty list of sources; give at least one camera index, file or URL")
    return items, False


class Stream:
    """An iterator of :class:`FrameResult` from one source or several.

    Args:
        detector: the :class:`~edge_emotion.EmotionDetector` that detects and classifies.
        sources: one source, a list of sources, or a ``{name: source}`` dict; each a camera index,
            a file path (``str`` / ``os.PathLike``), a URL, a GStreamer pipeline or a
            :class:`FrameSource`.
        detect_every: run the full face detector every N frames of a source, track in between.
        between: what the frames between full detections do. ``hold`` (default): reuse the last boxes.
            ``near``: search only around the last frame's faces (96x96 input each; YuNet, or BlazeFace on LiteRT, see
            :attr:`EmotionDetector.can_detect_near`), so boxes follow moving faces. Measured on the sample clip
            with YuNet (README, *Streams*): ``near`` saved little or nothing over a full detection and missed
            more faces than ``hold`` (8 % vs 3 % at N=3, 25 % vs 14 % at N=10), so ``hold`` is the default.
        smoothing: per-track EMA weight of the newest probabilities (0..1; ``None``: off).
        max_frames: stop each source after this many results.
        live: force live (newest frame only) or file (every frame) reading for all sources.
        skip: files: deliver one frame, then skip this many.
        **source_kwargs: passed to each :class:`FrameSource` (``max_retries``, ``backoff``,
            ``max_backoff``, ``stall_timeout``, ``open_timeout``, ``read_timeout``, ...).

    One source: a failure raises :class:`SourceError` at once. Several: a failed source is
    logged and the others go on; at the end a :class:`SourceError` names each failed source.
    :meth:`status` reports every source at any time. ``close()`` (or ``with``) stops the capture
    threads and releases the devices.
    """

    def __init__(self, detector, sources: Any, detect_every: int = 1, smoothing: float | None = None,
                 max_frames: int | None = None, live: bool | None = None, skip: int = 0, between: str = "hold",
                 **source_kwargs: Any) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if between not in ("near", "hold"):
            raise ValueError(f"between must be 'hold' or 'near', got {between!r}")
        if between == "near" and not getattr(detector, "can_detect_near", False):
            raise ValueError("between='near' needs a detector that can search near known faces (YuNet, or BlazeFace on LiteRT); "
                             "use between='hold'")
        self.between = between
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        items, self.single = _named_sources(sources)
        srcs = [s if isinstance(s, FrameSource) else FrameSource(s, live=live, skip=skip, name=name, **source_kwargs)
                for name, s in items]
        seen: dict[str, int] = {}
        for s in srcs:  # the same camera or file twice: results stay told apart by name
            seen[s.name] = seen.get(s.name, 0) + 1
            if seen[s.name] > 1:
                s.name = f"{s.name}#{seen[s.name]}"
        self.detector = detector
        self.max_frames = max_frames
        self.pipes = [_SourcePipeline(s, detect_every, smoothing) for s in srcs]
        self._wake = threading.Event()
        self._gen = self._run()

    @property
    def sources(self) -> list[FrameSource]:
        return [p.src for p in self.pipes]

    def status(self) -> list[SourceStatus]:
        """Every source's state, frames, dropped frames, reconnects, FPS and faces in its last result."""
        out = []
        for p in self.pipes:
            st = p.src.status()
            if p.done and st.state not in ("failed",):
                st.state = "ended"
            st.extra.update(fps=round(p.fps, 2), faces=p.last_faces)
            out.append(st)
        return out

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> FrameResult:
        return next(self._gen)

    def close(self) -> None:
        """Stop every capture thread and release the devices; idempotent."""
        self._gen.close()
        for p in self.pipes:
            p.src.stop()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the loop
    def _poll(self, pipe: _SourcePipeline) -> Frame | None:
        try:
            return pipe.src.poll()
        except SourceError as exc:
            pipe.done = True
            if self.single:
                raise
            log.warning("%s; the other sources go on", exc)
            return None

    def _run(self) -> Iterator[FrameResult]:
        det = self.detector
        for p in self.pipes:
            p.src.add_listener(self._wake)
        try:
            for p in self.pipes:
                if self.max_frames == 0:
                    p.done = True
                else:
                    p.src.start()
            active = [p for p in self.pipes if not p.done]
            while active:
                self._wake.clear()  # before polling: a frame that lands after the poll sets it again
                ready = [(p, f) for p in active if (f := self._poll(p)) is not None]
                for p in active:
                    if p.src.ended and not p.done:
                        p.done = True
                        if p.src.error is None:
                            log.info("source %s ended after %d frames", p.src.name, p.delivered)
                active = [p for p in active if not p.done]
                if not ready:
                    if active:
                        self._wake.wait(0.25)  # woken by any source's next frame; 0.25 s bounds stall checks
                    continue
                yield from self._tick(det, ready)
                active = [p for p in active if not p.done]
        finally:
            for p in self.pipes:
                p.src.stop()
        failed = [p.src for p in self.pipes if p.src.error is not None]
        if failed:
            raise SourceError(f"{len(failed)} of {len(self.pipes)} sources failed: "
                              + "; ".join(str(s.error) for s in failed))

    def _tick(self, det, ready: list[tuple[_SourcePipeline, Frame]]) -> Iterator[FrameResult]:
        t0 = time.perf_counter()
        imgs = [as_bgr(f.image, f"frame {f.index} of {p.src.name}") for p, f in ready]
        need = [k for k, (p, _) in enumerate(ready) if p.needs_detection()]
        if need:
            for k, boxes in zip(need, det.detect_faces([imgs[k] for k in need])):
                ready[k][0].boxes = boxes
        if self.between == "near":  # tracker-guided: the other frames search only around their last faces
            rest = [k for k, (p, _) in enumerate(ready) if k not in need and p.boxes]
            if rest:
                for k, boxes in zip(rest, det.detect_faces([imgs[k] for k in rest], near=[ready[k][0].boxes for k in rest])):
                    ready[k][0].boxes = boxes
        for p, _ in ready:
            p.n += 1
        per_frame = det.classify_faces(imgs, [p.boxes for p, _ in ready])  # ONE classifier call, every source
        now = time.perf_counter()
        ms = (now - t0) * 1000
        for (p, f), img, faces in zip(ready, imgs, per_frame):
            faces = p.tracker.update(faces, det.labels)
            p.delivered += 1
            p.last_faces = len(faces)
            res = FrameResult(f.index, f.timestamp, faces, ms, p.tick_fps(now), p.src.dropped, p.src.name,
                              p.src.reconnects, img)
            if self.max_frames is not None and p.delivered >= self.max_frames:
                p.done = True
                p.src.stop()
            yield res

