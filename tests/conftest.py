"""Shared fixtures. Real data lives in ../shared/data beside the project root (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_EMOTION_SHARED", ROOT.parent / "shared" / "data"))
SCENES = SHARED / "scenes"
FER_NPZ = SHARED / "fer2013.npz"
FERPLUS_NPZ = SHARED / "ferplus_labels.npz"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data {path} is missing: the shared data folder must sit beside the project root")
    return path


@pytest.fixture(scope="session")
def scenes() -> Path:
    return _need(SCENES)


@pytest.fixture(scope="session")
def fer_npz() -> Path:
    return _need(FER_NPZ)


@pytest.fixture(scope="session")
def ferplus_npz() -> Path:
    return _need(FERPLUS_NPZ)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from edge_emotion.cli import SAMPLE_IMAGE

    img = cv2.imread(str(SAMPLE_IMAGE))
    assert img is not None
    return img


@pytest.fixture(scope="session")
def scene_image(scenes):
    def load(name: str) -> np.ndarray:
        img = cv2.imread(str(scenes / name))
        assert img is not None, name
        return img

    return load


@pytest.fixture(scope="session")
def detector():
    """The bundled default model on its default backend (int8 LiteRT on a CPU)."""
    from edge_emotion import EmotionDetector

    return EmotionDetector(threads=2)


@pytest.fixture(scope="session")
def face_box(detector, astronaut) -> tuple[int, int, int, int]:
    """The sample photo's one face, (x, y, w, h) in pixels, as the default pipeline finds it."""
    (face,) = detector.detect(astronaut)
    return face.box


@pytest.fixture(scope="session")
def default_keras(tmp_path_factory) -> Path:
    """The bundled default's Keras source (one pass; a model with real margins), copied with its metadata
    so exports land in a temp folder."""
    import shutil

    from edge_emotion.runtime.zoo import artifact_path, load_index

    d = tmp_path_factory.mktemp("default_keras")
    keras = artifact_path(load_index()["default"], "keras")
    for f in (keras, keras.with_name(keras.name + ".json")):
        shutil.copy(f, d / f.name)
    return d / "model.keras"


@pytest.fixture(scope="session")
def fer_test(fer_npz):
    with np.load(fer_npz) as d:
        return d["x_test"], d["y_test"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, fer_npz):
    """A real end-to-end training run on a small slice (two epochs on 384 images per split)."""
    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train

    out = tmp_path_factory.mktemp("tiny_run")
    cfg = TrainConfig(model="edge_cnn", data=str(fer_npz), out=str(out), epochs=2, batch_size=64, limit=384,
                      model_kwargs={"width": 8}, mixed_precision="off", average_last=2)
    train(cfg)
    return out
