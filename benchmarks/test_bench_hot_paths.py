"""pytest-benchmark suite of the hot paths. Run:

    pytest benchmarks/ --benchmark-json out/bench.json
    python -m benchmarks.compare benchmarks/baseline/baseline.json out/bench.json

Threads are fixed at 1 so numbers are comparable between runs and machines of a class. Benchmarks that run
a model record its file and SHA-256 (``extra_info``), so a comparison can tell a slower model from slower code.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_emotion.runtime.classifier import EmotionClassifier
from edge_emotion.runtime.zoo import artifact_path, load_index, measured_file

THREADS = 1
DEFAULT = load_index()["default"]
ARTIFACTS = sorted(load_index()["models"][DEFAULT]["artifacts"]) if DEFAULT else []


@pytest.fixture(scope="module")
def detector():
    from edge_emotion import EmotionDetector

    return EmotionDetector(threads=THREADS)


def test_detect_sample_image(benchmark, detector, sample_frame):
    faces = benchmark(detector.detect, sample_frame)
    assert len(faces) == 1
    benchmark.extra_info.update(measured_file(detector.classifier.path))


@pytest.mark.parametrize("variant", ["yunet", "blazeface_full", "blazeface_short", "haar"])
def test_face_detection_640x480(benchmark, variant, frame_640x480):
    from edge_emotion.runtime.face_detection import create_face_detector

    det = create_face_detector(variant, threads=THREADS)
    faces = benchmark(det.detect, frame_640x480)
    assert len(faces) >= 1


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_classify(benchmark, artifact, batch, fer_test):
    path = artifact_path(DEFAULT, artifact)
    clf = EmotionClassifier(path, threads=THREADS)
    x = clf.preprocess([np.ascontiguousarray(c) for c in fer_test[0][:batch]])
    probs = benchmark(clf.predict, x)
    assert probs.shape == (batch, len(clf.labels))
    benchmark.extra_info.update(artifact=artifact, batch=batch, **measured_file(path))
