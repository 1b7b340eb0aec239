"""Accuracy gate: every bundled artifact scores at least its recorded floor on the full test split
of its own label set (FER-2013 PrivateTest; FER+ labels of the same images for 8-class models).
Inference is deterministic, so the floor (stored next to the model in ``models/index.json``
when it was bundled) is gated exactly."""

from __future__ import annotations

import pytest

from edge_emotion.evaluate import evaluate_file
from edge_emotion.runtime.zoo import MODELS_DIR, load_index

from .conftest import SHARED

CASES = [(name, key) for name, e in load_index()["models"].items() for key in e["accuracy_floor"]]


@pytest.mark.parametrize("name,key", CASES)
def test_accuracy_at_least_floor(name, key):
    entry = load_index()["models"][name]
    path = SHARED / "fer2013.npz"
    if not path.exists():
        pytest.fail(f"{path} missing: the shared data folder must sit beside the project root")
    res = evaluate_file(MODELS_DIR / name / entry["artifacts"][key]["file"], path, "test")
    floor = entry["accuracy_floor"][key]
    assert res.accuracy >= floor, f"{name}/{key}: accuracy {res.accuracy:.4%} fell below its floor {floor:.4%}"
