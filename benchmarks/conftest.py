"""Fixtures for the hot-path benchmarks: the same real inputs for every backend."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_frame() -> np.ndarray:
    from edge_emotion.cli import SAMPLE_IMAGE

    return cv2.imread(str(SAMPLE_IMAGE))


@pytest.fixture(scope="session")
def frame_640x480(sample_frame) -> np.ndarray:
    return cv2.resize(sample_frame, (640, 480))


@pytest.fixture(scope="session")
def fer_test():
    path = SHARED / "fer2013.npz"
    if not path.exists():
        pytest.fail(f"{path} missing: the shared data folder must sit beside the project root")
    with np.load(path) as d:
        return d["x_test"], d["y_test"]
