"""Camera and video streams: capture on its own thread, newest-frame-wins for live sources,
every frame for files, reconnect with back-off, face tracks and temporal smoothing.

    >>> for result in EmotionDetector().stream("clip.mp4"):
    ...     print(result.index, [f.emotion for f in result.faces])
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import SourceError
from .face_detection.base import FaceBox
from .results import Face
from .tracking import IoUTracker

log = logging.getLogger(__name__)

_END = object()


@dataclass
class Frame:
    index: int
    timestamp: float
    image: np.ndarray


@dataclass
class FrameResult:
    """Faces in one frame of a stream."""

    index: int
    timestamp: float
    faces: list[Face]
    latency_ms: float
    fps: float
    dropped: int = 0
    source: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.index, "timestamp": round(self.timestamp, 4), "latency_ms": round(self.latency_ms, 2),
                "fps": round(self.fps, 2), "dropped": self.dropped, "faces": [f.to_dict() for f in self.faces]}


def _default_opener(source):
    import cv2

    def open_capture():
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    return open_capture


class FrameSource:
    """Reads frames on a background thread.

    ``live=True`` (cameras, URLs): only the newest frame is kept, older ones are dropped and
    counted, so processing never falls behind. A source that fails, returns empty frames or
    stalls for ``stall_timeout`` seconds is reopened with exponential back-off; after
    ``max_retries`` failed attempts in a row :class:`SourceError` is raised.
    ``live=False`` (files): every frame is delivered in order; the end of the file ends the stream.
    """

    def __init__(self, source: Any, live: bool | None = None, opener: Callable[[], Any] | None = None,
                 max_retries: int = 5, backoff: float = 0.5, max_backoff: float = 8.0, stall_timeout: float = 5.0,
                 queue_size: int = 4, skip: int = 0) -> None:
        self.source = source
        self.name = str(source)
        self.live = live if live is not None else not (isinstance(source, str) and os.path.isfile(source))
        self._open = opener or _default_opener(source)
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.stall_timeout = stall_timeout
        self.skip = skip
        self.dropped = 0
        self.reconnects = 0
        self.fps_hint: float | None = None
        self._q: queue.Queue = queue.Queue(maxsize=1 if self.live else queue_size)
        self._stop = threading.Event()
        self._gen = 0
        self._lock = threading.Lock()
        self._index = 0
        self._error: Exception | None = None
        self._stalls = 0
        self._since_restart = 0
        self._opening = False
        self._opening_since = 0.0
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    # -- producer
    def _open_with_retries(self, gen: int):
        self._opening = True  # the consumer waits for this phase instead of calling it a stall
        self._opening_since = time.monotonic()
        try:
            return self._open_retrying(gen)
        finally:
            self._opening = False

    def _open_retrying(self, gen: int):
        delay = self.backoff
        for attempt in range(1, self.max_retries + 1):
            if self._stop.is_set() or gen != self._gen:
                return None
            try:
                cap = self._open()
            except Exception as exc:  # noqa: BLE001 - a source may raise anything
                log.warning("source %s: open failed (%s)", self.name, exc)
                cap = None
            if cap is not None:
                if self.fps_hint is None and hasattr(cap, "get"):
                    try:
                        import cv2

                        self.fps_hint = float(cap.get(cv2.CAP_PROP_FPS)) or None
                    except Exception:  # noqa: BLE001
                        pass
                return cap
            if not self.live:
                break
            if attempt == self.max_retries:
                break
            log.warning("source %s: unavailable, retry %d/%d in %.1f s", self.name, attempt, self.max_retries, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, self.max_backoff)
        raise SourceError(f"source {self.name}: could not be opened after {self.max_retries if self.live else 1} attempt(s)")

    def _put(self, item) -> None:
        if self.live:
            try:
                self._q.get_nowait()
                if item is not _END:
                    self.dropped += 1
            except queue.Empty:
                pass
            self._q.put_nowait(item)
        else:
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _run(self, gen: int) -> None:
        cap = None
        try:
            cap = self._open_with_retries(gen)
            failures = 0
            n_read = 0
            while cap is not None and not self._stop.is_set() and gen == self._gen:
                try:
                    ok, img = cap.read()
                except Exception as exc:  # noqa: BLE001
                    log.warning("source %s: read raised %s", self.name, exc)
                    ok, img = False, None
                if gen != self._gen:
                    break
                if ok and img is not None and getattr(img, "size", 0) > 0:
                    failures = 0
                    n_read += 1
                    if self.skip and (n_read - 1) % (self.skip + 1):
                        continue
                    with self._lock:
                        frame = Frame(self._index, time.monotonic() - self._t0, img)
                        self._index += 1
                    self._put(frame)
                    continue
                if not self.live:
                    break  # end of file
                failures += 1
                log.warning("source %s: dropped out (empty or failed read); reconnecting", self.name)
                _release(cap)
                self.reconnects += 1
                cap = self._open_with_retries(gen)
        except SourceError as exc:
            self._error = exc
        finally:
            _release(cap)
            if gen == self._gen:
                self._put(_END)

    # -- consumer
    def start(self) -> "FrameSource":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(self._gen,), daemon=True, name=f"capture-{self.name}")
        self._thread.start()
        return self

    def _restart(self) -> None:
        with self._lock:
            self._gen += 1
        self.reconnects += 1
        self._thread = threading.Thread(target=self._run, args=(self._gen,), daemon=True, name=f"capture-{self.name}")
        self._thread.start()

    # a reconnected source counts as recovered once this many frames have flowed again
    RECOVERED_AFTER = 30

    def read(self) -> Frame | None:
        """The next frame (live: the newest), or ``None`` at the end. Raises :class:`SourceError` on give-up.

        Stalls are counted across calls: a source that keeps stalling after every reconnect
        (fewer than ``RECOVERED_AFTER`` frames in between) is given up after ``max_retries``.
        """
        while True:
            try:
                item = self._q.get(timeout=self.stall_timeout)
            except queue.Empty:
                if self._opening:
                    # still (re)connecting with back-off: it ends in a frame or a SourceError,
                    # unless the open call itself hangs
                    budget = self.max_retries * (self.max_backoff + self.stall_timeout)
                    if time.monotonic() - self._opening_since < budget:
                        continue
                    raise SourceError(f"source {self.name}: opening hangs (no answer for {budget:.0f} s)") from None
                if not self.live:
                    raise SourceError(f"source {self.name}: no frame for {self.stall_timeout:.1f} s") from None
                self._stalls += 1
                if self._stalls > self.max_retries:
                    raise SourceError(f"source {self.name}: stalled; no steady frames after {self._stalls - 1} reconnects") from None
                log.warning("source %s: stalled for %.1f s; reconnecting (%d/%d)", self.name, self.stall_timeout,
                            self._stalls, self.max_retries)
                self._since_restart = 0
                self._restart()
                continue
            if item is _END:
                if self._error is not None:
                    raise self._error
                return None
            self._since_restart += 1
            if self._since_restart >= self.RECOVERED_AFTER:
                self._stalls = 0
            return item

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._gen += 1
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __iter__(self) -> Iterator[Frame]:
        while (f := self.read()) is not None:
            yield f

    def __enter__(self) -> "FrameSource":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _release(cap) -> None:
    if cap is not None and hasattr(cap, "release"):
        try:
            cap.release()
        except Exception:  # noqa: BLE001
            pass


class _Pipeline:
    """Detection every N frames, IoU tracking, batched classification."""

    def __init__(self, detector, detect_every: int = 1, smoothing: float | None = None) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.det = detector
        self.detect_every = detect_every
        self.tracker = IoUTracker(smoothing=smoothing, max_age=max(15, 2 * detect_every))
        self.n = 0
        self._last_boxes: list[FaceBox] = []

    def boxes_for(self, frame: np.ndarray) -> list[FaceBox]:
        if self.n % self.detect_every == 0:
            self._last_boxes = self.det.face_detector.detect(frame)[: self.det.max_faces]
        self.n += 1
        return self._last_boxes

    def finish(self, faces: list[Face]) -> list[Face]:
        return self.tracker.update(faces, self.det.labels)


def run_stream(detector, source: Any, detect_every: int = 1, smoothing: float | None = None, live: bool | None = None,
               max_frames: int | None = None, skip: int = 0, **source_kwargs) -> Iterator[FrameResult]:
    """Yield a :class:`FrameResult` per processed frame of ``source`` (camera index, URL, file, or a FrameSource)."""
    from .image import as_bgr

    src = source if isinstance(source, FrameSource) else FrameSource(source, live=live, skip=skip, **source_kwargs)
    pipe = _Pipeline(detector, detect_every, smoothing)
    t_prev = time.perf_counter()
    ema_fps = 0.0
    try:
        src.start()
        for k, frame in enumerate(src):
            if max_frames is not None and k >= max_frames:
                break
            t0 = time.perf_counter()
            img = as_bgr(frame.image, f"frame {frame.index} of {src.name}")
            with detector._lock:
                faces = detector._classify_boxes([img], [pipe.boxes_for(img)])[0]
            faces = pipe.finish(faces)
            now = time.perf_counter()
            inst = 1.0 / max(now - t_prev, 1e-6)
            ema_fps = inst if k == 0 else 0.9 * ema_fps + 0.1 * inst
            t_prev = now
            yield FrameResult(frame.index, frame.timestamp, faces, (now - t0) * 1000, ema_fps, src.dropped, src.name,
                              {"image": img})
    finally:
        src.stop()


def run_streams(detector, sources: list[Any], smoothing: float | None = None, max_frames: int | None = None,
                **source_kwargs) -> Iterator[list[FrameResult | None]]:
    """Several live sources, one batched classifier call per tick: yields one result (or None at its end) per source."""
    from .image import as_bgr

    srcs = [s if isinstance(s, FrameSource) else FrameSource(s, **source_kwargs) for s in sources]
    trackers = [IoUTracker(smoothing=smoothing) for _ in srcs]
    alive = [True] * len(srcs)
    try:
        for s in srcs:
            s.start()
        tick = 0
        while any(alive) and (max_frames is None or tick < max_frames):
            t0 = time.perf_counter()
            frames = [s.read() if a else None for s, a in zip(srcs, alive)]
            alive = [f is not None for f in frames]
            idx = [i for i, f in enumerate(frames) if f is not None]
            imgs = [as_bgr(frames[i].image) for i in idx]
            with detector._lock:
                boxes = [detector.face_detector.detect(im)[: detector.max_faces] for im in imgs]
                per = detector._classify_boxes(imgs, boxes)  # ONE classifier call for all sources
            out: list[FrameResult | None] = [None] * len(srcs)
            ms = (time.perf_counter() - t0) * 1000
            for i, faces in zip(idx, per):
                faces = trackers[i].update(faces, detector.labels)
                out[i] = FrameResult(frames[i].index, frames[i].timestamp, faces, ms, 1000 / max(ms, 1e-3), srcs[i].dropped, srcs[i].name)
            tick += 1
            if any(alive):
                yield out
    finally:
        for s in srcs:
            s.stop()


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or os.name == "nt"


def run_cli_stream(detector, source, args, live: bool) -> int:
    """The ``video`` and ``camera`` commands: annotated video, JSON lines, optional window, FPS summary."""
    import cv2

    from .annotate import annotate

    if not live and not os.path.isfile(str(source)):
        raise SourceError(f"{source}: video file not found")
    show = getattr(args, "show", False)
    if show and not _has_display():
        log.warning("--show ignored: no display")
        show = False
    writer = None
    jsonl = open(args.jsonl, "w") if args.jsonl else None
    n = 0
    t_start = time.perf_counter()
    skip = getattr(args, "skip", 0) or 0
    src = FrameSource(source, live=live, skip=skip)
    results = run_stream(detector, src, detect_every=args.detect_every, smoothing=args.smoothing, max_frames=args.max_frames)
    try:
        for res in results:
            n += 1
            img = res.extra.pop("image")
            if jsonl:
                jsonl.write(json.dumps(res.to_dict()) + "\n")
            if args.out or show:
                vis = annotate(img, res.faces, fps=res.fps, latency_ms=res.latency_ms)
                if args.out:
                    if writer is None:
                        fps = (src.fps_hint or 25.0) / (skip + 1)
                        writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (vis.shape[1], vis.shape[0]))
                        if not writer.isOpened():
                            raise SourceError(f"cannot open {args.out} for writing")
                    writer.write(vis)
                if show:
                    cv2.imshow("edge-emotion", vis)
                    if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                        break
    except KeyboardInterrupt:
        log.warning("interrupted: finishing the output files")
    finally:
        results.close()  # stops the capture thread and releases the device
        if writer is not None:
            writer.release()
        if jsonl:
            jsonl.close()
        if show:
            cv2.destroyAllWindows()
    dt = time.perf_counter() - t_start
    print(f"{n} frames in {dt:.1f} s: {n / max(dt, 1e-9):.1f} FPS"
          + (f", {src.dropped} dropped (live)" if live else "") + (f", {src.reconnects} reconnects" if src.reconnects else ""))
    return 0
