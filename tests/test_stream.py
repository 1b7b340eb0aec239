"""Streams: every frame of a file, newest-frame-wins for live sources, reconnect, clean stop, tracks."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edge_emotion.errors import SourceError
from edge_emotion.runtime.stream import FrameSource, run_stream, run_streams
from edge_emotion.runtime.tracking import IoUTracker
from edge_emotion.runtime.results import Face


class FakeCapture:
    """A camera that delivers ``frames`` frames, then fails (or stalls) as told."""

    def __init__(self, frame, frames=5, then="fail", delay=0.0):
        self.frame, self.left, self.then, self.delay = frame, frames, then, delay
        self.released = False

    def read(self):
        if self.delay:
            time.sleep(self.delay)
        if self.left > 0:
            self.left -= 1
            return True, self.frame.copy()
        if self.then == "stall":
            time.sleep(3600)
        if self.then == "raise":
            raise OSError("USB disconnected")
        if self.then == "empty":
            return True, np.zeros((0, 0, 3), np.uint8)
        return False, None

    def release(self):
        self.released = True


def test_every_frame_of_the_clip_and_tracks(detector, scenes, tmp_path):
    clip = scenes / "short_hamilton_clip.mp4"
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    r = subprocess.run([sys.executable, "-m", "edge_emotion.cli", "video", str(clip), "--out", str(out), "--jsonl", str(jsonl)],
                       capture_output=True, text=True, check=True)
    assert "FPS" in r.stdout
    lines = [json.loads(ln) for ln in jsonl.read_text().splitlines()]
    assert [ln["frame"] for ln in lines] == list(range(275))
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 275
    # the singer (frames ~86-220) keeps one track ID through most of the section
    ids = [f["track_id"] for ln in lines[90:215] for f in ln["faces"] if f["box"][2] > 25]
    assert ids, "no face found in the singer's section"
    top = max(set(ids), key=ids.count)
    assert ids.count(top) >= 0.6 * 125


def test_live_source_drops_old_frames_instead_of_queueing(detector, astronaut):
    cap = FakeCapture(astronaut, frames=400, then="fail", delay=0.001)
    src = FrameSource("fake", live=True, opener=lambda: cap, max_retries=1, backoff=0.01)
    results = list(run_stream(detector, src, max_frames=10))
    assert len(results) == 10
    assert results[-1].dropped > 0  # processing is slower than 1 ms a frame: frames were dropped
    assert results[-1].index > 10


def test_camera_that_fails_midway_is_reconnected(detector, astronaut):
    opened = []

    attempts = []

    def opener():
        attempts.append(1)
        if len(attempts) > 2:
            return None  # the camera is gone for good
        cap = FakeCapture(astronaut, frames=3, then="raise" if not opened else "fail")
        opened.append(cap)
        return cap

    src = FrameSource("fake-cam", live=True, opener=opener, max_retries=2, backoff=0.01)
    with pytest.raises(SourceError, match="could not be opened after 2"):
        for _ in run_stream(detector, src):
            pass
    assert len(opened) == 2  # reopened after the first dropped out
    assert src.reconnects >= 1
    assert all(c.released for c in opened)


def test_stalled_camera_is_reported_not_hung_on(astronaut):
    src = FrameSource("stall-cam", live=True, opener=lambda: FakeCapture(astronaut, frames=1, then="stall"),
                      stall_timeout=0.3, max_retries=2, backoff=0.01)
    t = time.monotonic()
    with src:
        assert src.read() is not None
        with pytest.raises(SourceError, match="stalled"):
            while src.read() is not None:
                pass
    assert time.monotonic() - t < 10


def test_empty_frames_trigger_reconnect(astronaut):
    caps = []

    def opener():
        caps.append(FakeCapture(astronaut, frames=2, then="empty"))
        return caps[-1]

    src = FrameSource("empty-cam", live=False, opener=opener)
    with src:
        frames = list(src)
    assert len(frames) == 2  # a file-like source ends at the first empty frame
    src = FrameSource("empty-cam", live=True, opener=opener, max_retries=2, backoff=0.01)
    with src:
        got = [src.read() for _ in range(3)]
    assert all(g is not None for g in got) and len(caps) >= 3


def test_stop_releases_the_device(astronaut):
    cap = FakeCapture(astronaut, frames=10**6, delay=0.001)
    src = FrameSource("cam", live=True, opener=lambda: cap)
    src.start()
    assert src.read() is not None
    src.stop()
    time.sleep(0.1)
    assert cap.released


def test_two_sources_share_one_classifier_call(detector, astronaut, monkeypatch):
    calls = []
    real = detector.classifier.backend.infer
    monkeypatch.setattr(detector.classifier.backend, "infer", lambda b: calls.append(len(b)) or real(b))
    srcs = [FrameSource(f"cam{i}", live=False, opener=lambda: FakeCapture(astronaut, frames=3)) for i in range(2)]
    ticks = list(run_streams(detector, srcs, max_frames=3))
    assert len(ticks) == 3 and all(len(t) == 2 and all(r and len(r.faces) == 1 for r in t) for t in ticks)
    assert calls == [2, 2, 2]


def test_tracker_keeps_ids_and_smooths():
    labels = ["a", "b"]

    def face(x, pa):
        return Face((x, 10, 50, 50), 0.9, "a", pa, {"a": pa, "b": 1 - pa})

    tr = IoUTracker(smoothing=0.5)
    f1 = tr.update([face(10, 1.0), face(200, 1.0)], labels)
    f2 = tr.update([face(14, 0.0), face(204, 1.0)], labels)
    assert [f.track_id for f in f1] == [f.track_id for f in f2] == [1, 2]
    assert f2[0].probabilities["a"] == pytest.approx(0.5)
    f3 = tr.update([face(400, 1.0)], labels)
    assert f3[0].track_id == 3
    with pytest.raises(ValueError):
        IoUTracker(smoothing=0)


def test_detect_every_n_frames_tracks_in_between(detector, astronaut, monkeypatch):
    calls = []
    real = detector.face_detector.detect
    monkeypatch.setattr(detector.face_detector, "detect", lambda f: calls.append(1) or real(f))
    src = FrameSource("file", live=False, opener=lambda: FakeCapture(astronaut, frames=9))
    results = list(run_stream(detector, src, detect_every=3, smoothing=0.3))
    assert len(results) == 9 and len(calls) == 3
    assert {f.track_id for r in results for f in r.faces} == {1}
    assert all(abs(sum(r.faces[0].probabilities.values()) - 1) < 1e-4 for r in results)
    with pytest.raises(ValueError, match="detect_every"):
        next(run_stream(detector, FrameSource("f", live=False, opener=lambda: FakeCapture(astronaut)), detect_every=0))


def test_camera_that_never_opens_or_hangs_opening_is_reported():
    src = FrameSource("absent", live=True, opener=lambda: None, max_retries=3, backoff=0.01, stall_timeout=0.2)
    t = time.monotonic()
    with src, pytest.raises(SourceError, match="could not be opened after 3"):
        src.read()
    assert time.monotonic() - t < 2

    def hang():
        time.sleep(3600)

    src = FrameSource("hang", live=True, opener=hang, max_retries=2, max_backoff=0.1, stall_timeout=0.2)
    t = time.monotonic()
    with src:
        with pytest.raises(SourceError, match="opening hangs"):
            src.read()
        assert time.monotonic() - t < 2
