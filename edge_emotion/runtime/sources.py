"""Frame sources: what ``stream()`` accepts, how each kind is opened, read on its own thread, and
reconnected with exponential back-off.

Accepted sources (:func:`parse_source`):

==============================  ==========  ===================================================
given                           kind        read as
==============================  ==========  ===================================================
``0``, ``"0"``, ``/dev/video0``  camera      live: only the newest frame is kept
``"clip.mp4"``, ``Path(...)``   file        every frame once, in order; the end ends the source
``rtsp://``, ``http(s)://``,    url         live, through OpenCV's FFmpeg with open/read time-outs
``tcp://``, ``udp://``, ...
``"... ! appsink"``             gstreamer   live, through OpenCV's GStreamer backend (an OpenCV
                                            built with GStreamer; pip's OpenCV has none)
==============================  ==========  ===================================================

A live source that fails to open or to read is released and reopened after a delay that doubles
from ``backoff`` up to ``max_backoff``; ``max_retries`` failed attempts in a row (no frame in
between) end it with a :class:`~edge_emotion.errors.SourceError` naming the source and what failed.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import InputError, SourceError

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "rtp", "srt")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_END = object()


# ----------------------------------------------------------------------------- what a source is
@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: its ``kind`` (camera, file, url, gstreamer, custom), what OpenCV opens
    (``target``) and the ``name`` results carry (credentials in URLs are masked)."""

    kind: str
    target: int | str
    name: str

    @property
    def live(self) -> bool:
        return self.kind != "file"


def _mask_credentials(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def gstreamer_available() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (pip's opencv-python cannot)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def parse_source(source: Any, name: str | None = None) -> SourceSpec:
    """Classify ``source`` (camera index, path, URL or GStreamer pipeline), or raise a clear error."""
    if isinstance(source, bool) or source is None:
        raise InputError(f"source {source!r}: expected a camera index, a video file path, a URL or a GStreamer pipeline")
    if isinstance(source, (int, np.integer)):
        if source < 0:
            raise InputError(f"camera index {source} is negative; cameras are numbered from 0")
        return SourceSpec("camera", int(source), name or str(int(source)))
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise SourceError(f"{path}: video file not found" + (" (it is a folder)" if os.path.isdir(path) else ""))
        return SourceSpec("file", str(path), name or str(path))
    if not isinstance(source, str):
        raise InputError(f"source of type {type(source).__name__}: expected an int (camera index), str or "
                         "os.PathLike (file, URL, GStreamer pipeline), or a list of these")
    s = source.strip()
    if not s:
        raise InputError("source is an empty string: give a camera index, a file path, a URL or a GStreamer pipeline")
    if "!" in s and "appsink" in s:
        return SourceSpec("gstreamer", s, name or s)
    m = _SCHEME.match(s)
    if m:
        scheme = m.group(1).lower()
        if scheme == "file":
            path = s[len("file://"):]
            if not os.path.isfile(path):
                raise SourceError(f"{path}: video file not found")
            return SourceSpec("file", path, name or path)
        if scheme not in URL_SCHEMES:
            raise SourceError(f"{_mask_credentials(s)}: unsupported URL scheme {scheme!r}; "
                              f"supported: {', '.join(URL_SCHEMES)}")
        return SourceSpec("url", s, name or _mask_credentials(s))
    if os.path.isfile(s):
        return SourceSpec("file", s, name or s)
    if s.isdigit():
        return SourceSpec("camera", int(s), name or s)
    if s.startswith("/dev/video"):
        return SourceSpec("camera", s, name or s)
    if os.path.isdir(s):
        raise SourceError(f"{s}: is a folder, not a video file")
    raise SourceError(f"{s}: video file not found (nor is it a camera index, a URL such as rtsp://, http://, "
                      "tcp://, or a GStreamer pipeline ending in '! appsink')")


def open_capture(spec: SourceSpec, open_timeout: float = 10.0, read_timeout: float = 5.0):
    """Open ``spec`` with OpenCV; ``None`` when it cannot be opened right now (a retry may succeed).

    Raises :class:`SourceError` for what no retry fixes (a GStreamer pipeline on an OpenCV without
    GStreamer). URLs go through FFmpeg with open and read time-outs, so a dead server makes
    ``read()`` fail instead of hanging.
    """
    import cv2

    if spec.kind == "gstreamer":
        if not gstreamer_available():
            raise SourceError(f"source {spec.name}: this OpenCV ({cv2.__version__}) was built without GStreamer "
                              "(pip's opencv-python wheels have none); install your OS's OpenCV (Raspberry Pi OS: "
                              "apt install python3-opencv; Jetson: JetPack's OpenCV) - see README, 'GStreamer'")
        cap = cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
    elif spec.kind == "url":
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000)]
        cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(spec.target)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


# ----------------------------------------------------------------------------- back-off
@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: ``initial``, doubling, capped at ``cap``; ``budget`` failed
    attempts in a row give up."""

    initial: float = 0.5
    cap: float = 8.0
    budget: int = 5
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap < self.initial or self.budget < 1 or self.factor < 1:
            raise ValueError(f"invalid back-off {self}: need 0 < initial <= cap, budget >= 1, factor >= 1")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt in a row (1-based)."""
        return min(self.initial * self.factor ** (failures - 1), self.cap)

    def schedule(self) -> list[float]:
        """Every wait before giving up: ``budget - 1`` delays."""
        return [self.delay(k) for k in range(1, self.budget)]


class Clock:
    """Time for the capture thread; tests pass a fake one to check the back-off schedule."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds`` or until ``stop`` is set."""
        stop.wait(seconds)


# ----------------------------------------------------------------------------- the reader
@dataclass
class Frame:
    index: int
    timestamp: float
    image: np.ndarray


@dataclass
class SourceStatus:
    """What one source is doing: ``state`` is opening, backoff, reading, ended or failed."""

    name: str
    kind: str
    state: str
    frames: int
    dropped: int
    reconnects: int
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {"source": self.name, "kind": self.kind, "state": self.state, "frames": self.frames,
             "dropped": self.dropped, "reconnects": self.reconnects}
        if self.error:
            d["error"] = self.error
        return d


class FrameSource:
    """Reads one source on a background thread.

    Args:
        source: anything :func:`parse_source` accepts, or a name when ``opener`` is given.
        live: override the kind's default (cameras and URLs live, files not).
        opener: a callable returning an object with ``read() -> (ok, image)`` and ``release()``,
            or ``None`` when it cannot open (for custom capture devices and tests).
        max_retries: failed attempts (opening or reading) in a row before :class:`SourceError`.
        backoff, max_backoff: the first delay and the cap; the delay doubles in between.
        stall_timeout: a ``read()`` call blocked this long counts as a stall: the source is
            reopened on a new thread (the blocked call's capture is released when it returns).
        open_timeout, read_timeout: FFmpeg time-outs for URLs; a blocked open is reported after
            ``open_timeout + stall_timeout``.
        skip: files: deliver one frame, then skip this many.
        clock: time source for back-off waits (tests pass a fake one).

    ``live`` sources keep only the newest frame (older ones are dropped and counted); files
    deliver every frame and block the reader while ``queue_size`` frames wait.
    """

    # a reconnected source counts as recovered once this many frames have flowed again
    RECOVERED_AFTER = 30

    def __init__(self, source: Any, live: bool | None = None, opener: Callable[[], Any] | None = None,
                 max_retries: int = 5, backoff: float = 0.5, max_backoff: float = 8.0, stall_timeout: float = 5.0,
                 queue_size: int = 4, skip: int = 0, name: str | None = None, open_timeout: float = 10.0,
                 read_timeout: float = 5.0, clock: Clock | None = None) -> None:
        if opener is not None:
            self.spec = SourceSpec("custom", str(source), name or str(source))
            self._open: Callable[[], Any] = opener
        else:
            self.spec = parse_source(source, name)
            self._open = lambda: open_capture(self.spec, open_timeout, read_timeout)
        self.source = source
        self.name = self.spec.name
        self.live = live if live is not None else self.spec.live
        self.backoff = Backoff(backoff, max(max_backoff, backoff), max_retries)
        self.stall_timeout = stall_timeout
        self.open_timeout = open_timeout
        self.skip = skip
        self.clock = clock or Clock()
        self.dropped = 0
        self.reconnects = 0
        self.frames = 0
        self.fps_hint: float | None = None
        self.ended = False
        self.error: SourceError | None = None
        self._q: queue.Queue = queue.Queue(maxsize=1 if self.live else queue_size)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._listeners: list[threading.Event] = [self._ready]
        self._gen = 0
        self._lock = threading.Lock()
        self._index = 0
        self._stalls = 0
        self._since_restart = 0
        self._opens = 0
        self._state = "idle"
        self._call_started: float | None = None  # when the blocking open()/read() in progress began
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ producer (capture thread)
    def _signal(self) -> None:
        for ev in self._listeners:
            ev.set()

    def _put(self, item: Any) -> None:
        if self.live:
            try:
                old = self._q.get_nowait()
                if old is not _END:
                    self.dropped += 1
            except queue.Empty:
                pass
            self._q.put_nowait(item)
        else:
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
        self._signal()

    def _give_up(self, failures: int, what: str, started: float) -> SourceError:
        return SourceError(f"source {self.name}: {what}; gave up after {failures} failed attempt(s) in a row "
                           f"over {self.clock.now() - started:.1f} s (back-off {self.backoff.initial:g} s doubling to "
                           f"{self.backoff.cap:g} s)")

    def _try_open(self, gen: int) -> tuple[Any, str]:
        self._state, self._call_started = "opening", time.monotonic()
        try:
            cap = self._open()
        except SourceError:
            raise  # no retry fixes it
        except Exception as exc:  # noqa: BLE001 - a device driver may raise anything
            return None, f"open raised {type(exc).__name__}: {exc}"
        finally:
            self._call_started = None
        if cap is None:
            return None, "could not be opened"
        if gen != self._gen:
            _release(cap)
            return None, "superseded"
        if self.fps_hint is None and hasattr(cap, "get"):
            try:
                import cv2

                self.fps_hint = float(cap.get(cv2.CAP_PROP_FPS)) or None
            except Exception:  # noqa: BLE001
                pass
        return cap, ""

    def _read_one(self, cap) -> tuple[np.ndarray | None, str]:
        self._state, self._call_started = "reading", time.monotonic()
        try:
            ok, img = cap.read()
        except Exception as exc:  # noqa: BLE001
            return None, f"read raised {type(exc).__name__}: {exc}"
        finally:
            self._call_started = None
        if not ok or img is None:
            return None, "read failed (no frame: disconnected or end of stream)"
        if getattr(img, "size", 0) == 0:
            return None, "read returned an empty frame"
        return img, ""

    def _run(self, gen: int) -> None:
        cap = None
        failures = 0  # failed attempts (open or read) since the last good frame
        first_failure = 0.0
        n_read = 0
        try:
            while not self._stop.is_set() and gen == self._gen:
                if cap is None:
                    if failures:
                        delay = self.backoff.delay(failures)
                        log.warning("source %s: retrying in %.1f s (%d/%d)", self.name, delay, failures, self.backoff.budget)
                        self._state = "backoff"
                        self.clock.sleep(delay, self._stop)
                        if self._stop.is_set() or gen != self._gen:
                            break
                    cap, why = self._try_open(gen)
                    if cap is None:
                        if why == "superseded":
                            break
                        failures, first_failure = failures + 1, first_failure if failures else self.clock.now()
                        log.warning("source %s: %s", self.name, why)
                        if not self.live:
                            raise SourceError(f"source {self.name}: {why} (not a video file, or a codec this OpenCV "
                                              "build cannot decode)")
                        if failures >= self.backoff.budget:
                            raise self._give_up(failures, why, first_failure)
                        continue
                    self._opens += 1
                    if self._opens > 1:
                        self.reconnects += 1
                img, why = self._read_one(cap)
                if gen != self._gen:
                    break
                if img is not None:
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
                    if why.startswith("read raised"):
                        log.warning("source %s: %s; ending the file", self.name, why)
                    break  # end of file
                failures, first_failure = failures + 1, first_failure if failures else self.clock.now()
                log.warning("source %s: %s; releasing it before reconnecting", self.name, why)
                _release(cap)  # the old capture goes before a new one opens
                cap = None
                if failures >= self.backoff.budget:
                    raise self._give_up(failures, why, first_failure)
        except SourceError as exc:
            self.error = exc
        finally:
            _release(cap)
            if gen == self._gen:
                self._put(_END)

    # ------------------------------------------------------------------ consumer
    def add_listener(self, event: threading.Event) -> None:
        """``event`` is set whenever a frame (or the end) arrives; one event can serve many sources."""
        self._listeners.append(event)

    def start(self) -> "FrameSource":
        """Start reading on a background thread; a no-op while it already runs."""
        if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
            return self
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

    def _check_blocked_call(self) -> None:
        started = self._call_started
        if started is None:
            return
        blocked = time.monotonic() - started
        if self._state == "opening":
            limit = self.open_timeout + self.stall_timeout
            if blocked > limit:
                raise SourceError(f"source {self.name}: opening hangs (no answer for {limit:.0f} s)")
            return
        if blocked <= self.stall_timeout:
            return
        if not self.live:
            raise SourceError(f"source {self.name}: no frame for {self.stall_timeout:.1f} s (read blocked)")
        self._stalls += 1
        if self._stalls > self.backoff.budget:
            raise SourceError(f"source {self.name}: stalled; no steady frames after {self._stalls - 1} reconnects")
        log.warning("source %s: stalled for %.1f s; reconnecting (%d/%d)", self.name, self.stall_timeout,
                    self._stalls, self.backoff.budget)
        self._since_restart = 0
        self._restart()

    def poll(self) -> Frame | None:
        """The next frame if one is ready (live: the newest), else ``None`` at once; never blocks.

        At the end of the source :attr:`ended` becomes true. Raises :class:`SourceError` when the
        source gave up (the reason names the source and what failed); :attr:`error` keeps it.
        """
        if self.ended:
            return None
        try:
            item = self._q.get_nowait()
        except queue.Empty:
            try:
                self._check_blocked_call()
            except SourceError as exc:
                self.error, self.ended = exc, True
                self.stop(join=False)  # its thread is blocked in the device call: leave it, never wait on it
                raise
            return None
        if item is _END:
            self.ended = True
            if self.error is not None:
                raise self.error
            return None
        self.frames += 1
        self._since_restart += 1
        if self._since_restart >= self.RECOVERED_AFTER:
            self._stalls = 0
        return item

    def read(self) -> Frame | None:
        """The next frame, waiting for it; ``None`` at the end. Raises :class:`SourceError` on give-up."""
        while True:
            self._ready.clear()
            frame = self.poll()
            if frame is not None or self.ended:
                return frame
            self._ready.wait(min(0.25, self.stall_timeout))

    def status(self) -> SourceStatus:
        state = "failed" if self.error is not None else "ended" if self.ended else self._state
        return SourceStatus(self.name, self.spec.kind, state, self.frames, self.dropped, self.reconnects,
                            None if self.error is None else str(self.error))

    def stop(self, join: bool = True) -> None:
        """Stop reading; the capture is released by its thread (``join``: wait up to 2 s for that)."""
        self._stop.set()
        with self._lock:
            self._gen += 1
        if join and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def __iter__(self) -> Iterator[Frame]:
        while (f := self.read()) is not None:
            yield f

    def __enter__(self) -> "FrameSource":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _release(cap: Any) -> None:
    if cap is not None and hasattr(cap, "release"):
        try:
            cap.release()
        except Exception:  # noqa: BLE001
            pass
