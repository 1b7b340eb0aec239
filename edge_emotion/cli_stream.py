"""The ``video`` and ``camera`` commands: one or several sources, JSON lines, annotated videos,
an optional window, a live status line per source on a terminal and a summary at the end."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO, Any

from .errors import InputError, SourceError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or os.name == "nt"


def safe_name(name: str) -> str:
    """A file-name stem for a source name: ``clip`` for ``videos/clip.mp4``, ``camera_0`` for ``0``,
    ``10.0.0.7_stream`` for ``rtsp://user:***@10.0.0.7/stream``."""
    if "://" in name:
        s = re.sub(r"^[^:]+://([^@/]*@)?", "", name)  # scheme and credentials
    else:
        s = Path(name).name
        stem, ext = os.path.splitext(s)
        s = stem + "_" + ext.split("#", 1)[1] if "#" in ext else stem if ext else s
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._")
    return f"camera_{s}" if s.isdigit() else s or "source"


def output_paths(out: str, names: list[str]) -> dict[str, Path]:
    """Where each source's annotated video goes: ``out`` itself for one source when it has a video
    suffix, else one ``<name>.mp4`` per source in the folder ``out``."""
    target = Path(out)
    if target.suffix.lower() in VIDEO_SUFFIXES:
        if len(names) > 1:
            raise InputError(f"--out {out}: {len(names)} sources need a folder (one video per source), not a file name")
        target.parent.mkdir(parents=True, exist_ok=True)
        return {names[0]: target}
    target.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for n in names:
        stem, k = safe_name(n), 2
        p = target / f"{stem}.mp4"
        while p in paths.values():
            p, k = target / f"{stem}_{k}.mp4", k + 1
        paths[n] = p
    return paths


class StatusBoard:
    """One line per source on a terminal, redrawn in place at most ``every`` seconds."""

    def __init__(self, stream, out: IO[str], every: float = 0.5) -> None:
        self.stream, self.out, self.every = stream, out, every
        self._drawn = 0
        self._last = 0.0

    def line(self, st) -> str:
        s = f"{st.name}: {st.state}"
        if st.state in ("reading", "ended"):
            s += f", {st.extra.get('fps', 0):.1f} fps, {st.extra.get('faces', 0)} face(s)"
        s += f", {st.frames} frames, {st.dropped} dropped, {st.reconnects} reconnects"
        if st.error:
            s += f" - {st.error.split(';')[0]}"
        return s

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        lines = [self.line(st) for st in self.stream.status()]
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")  # back to the first status line
        for ln in lines:
            self.out.write("\x1b[2K" + ln[:200] + "\n")
        self.out.flush()
        self._drawn = len(lines)


def run_cli_stream(detector, sources: list[Any], args) -> int:
    """Run the stream of ``sources`` with the options of ``video`` / ``camera``; 0 when no source failed."""
    import cv2

    from .runtime.annotate import annotate

    show = getattr(args, "show", False)
    if show and not _has_display():
        log.warning("--show ignored: no display")
        show = False
    skip = getattr(args, "skip", 0) or 0
    source_kwargs: dict[str, Any] = {}
    if getattr(args, "max_retries", None) is not None:
        source_kwargs["max_retries"] = args.max_retries
    stream = detector.stream(sources if len(sources) > 1 else sources[0], detect_every=args.detect_every,
                             smoothing=args.smoothing, max_frames=args.max_frames, skip=skip, **source_kwargs)
    names = [s.name for s in stream.sources]
    paths = output_paths(args.out, names) if args.out else {}
    to_stdout = args.jsonl == "-"
    report = sys.stderr if to_stdout else sys.stdout
    jsonl: IO[str] | None = sys.stdout if to_stdout else (open(args.jsonl, "w") if args.jsonl else None)
    board = None
    if not getattr(args, "no_status", False) and sys.stderr.isatty() and not (to_stdout and sys.stdout.isatty()):
        board = StatusBoard(stream, sys.stderr)
    writers: dict[str, Any] = {}
    by_name = {s.name: s for s in stream.sources}
    n = 0
    t_start = time.perf_counter()
    try:
        for res in stream:
            n += 1
            if jsonl:
                jsonl.write(json.dumps(res.to_dict()) + "\n")
            if paths or show:
                vis = annotate(res.image, res.faces, fps=res.fps, latency_ms=res.latency_ms)
                if res.source in paths:
                    if res.source not in writers:
                        fps = (by_name[res.source].fps_hint or 25.0) / (skip + 1)
                        w = cv2.VideoWriter(str(paths[res.source]), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                            (vis.shape[1], vis.shape[0]))
                        if not w.isOpened():
                            raise SourceError(f"cannot open {paths[res.source]} for writing")
                        writers[res.source] = w
                    writers[res.source].write(vis)
                if show:
                    cv2.imshow(f"edge-emotion: {res.source}", vis)
                    if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                        break
            if board:
                board.draw()
    except KeyboardInterrupt:
        log.warning("interrupted: finishing the output files")
    finally:
        stream.close()  # stops the capture threads and releases the devices
        for w in writers.values():
            w.release()
        if jsonl and jsonl is not sys.stdout:
            jsonl.close()
        if show:
            cv2.destroyAllWindows()
        if board:
            board.draw(force=True)
        dt = time.perf_counter() - t_start
        for st in stream.status():
            print(f"{st.name}: {st.frames} frames, {st.dropped} dropped, {st.reconnects} reconnects"
                  + (f", {st.state}: {st.error}" if st.error else "")
                  + (f" -> {paths[st.name]}" if st.name in paths else ""), file=report)
        print(f"{n} frames in {dt:.1f} s: {n / max(dt, 1e-9):.1f} FPS", file=report)
    return 0
