"""Accuracy gate: every bundled artifact scores at least its recorded floor on the full test split
of its own label set (FER-2013 PrivateTest; FER+ labels of the same images for 8-class models).

Inference is deterministic for one hardware class and runtime version, so on the class and versions
the floor was recorded with (``floor_measured_on`` in ``models/index.json``) the floor is gated
exactly. Elsewhere (AVX-512 VNNI or ARM int8 kernels, another LiteRT or ONNX Runtime release) the
precision's ``floor_tolerance`` from the format table applies: a correct build on another CPU passes,
a broken preprocessing or a damaged model (points, not hundredths) still fails."""

from __future__ import annotations

import pytest

from edge_emotion.doctor import RUNTIMES, int8_class, runtime_versions
from edge_emotion.evaluate import evaluate_file
from edge_emotion.formats import PRECISIONS, format_by_name, split_artifact_key
from edge_emotion.runtime.zoo import artifact_path, load_index

from .conftest import SHARED

CASES = [(name, key) for name, e in load_index()["models"].items() for key in e["accuracy_floor"]]


def floor_tolerance(entry: dict, key: str) -> float:
    """0 on the hardware class and runtime versions the floor was recorded with, else the precision's tolerance."""
    recorded = entry.get("floor_measured_on") or {}
    fmt, precision = split_artifact_key(key)
    # the runtimes that can run this format (doctor's table), each at the version recorded with the floor
    runtimes = [name for name, _, backend, _ in RUNTIMES if backend == format_by_name(fmt).backend]
    here = runtime_versions()
    same = recorded.get("int8_class") == int8_class() and all(
        (recorded.get("runtimes") or {}).get(r) == here.get(r) for r in runtimes)
    return 0.0 if same else PRECISIONS[precision].floor_tolerance


def test_tolerance_is_exact_only_where_the_floor_was_recorded():
    entry = {"floor_measured_on": {"int8_class": int8_class(), "runtimes": runtime_versions()}}
    assert floor_tolerance(entry, "tflite_int8") == 0.0
    other = {"floor_measured_on": {"int8_class": "arm-dotprod", "runtimes": runtime_versions()}}
    assert floor_tolerance(other, "tflite_int8") == PRECISIONS["int8"].floor_tolerance > floor_tolerance(other, "onnx_fp32") > 0
    assert floor_tolerance({}, "onnx_fp16") == PRECISIONS["fp16"].floor_tolerance  # unknown origin: tolerant


@pytest.mark.parametrize("name,key", CASES)
def test_accuracy_at_least_floor(name, key):
    entry = load_index()["models"][name]
    path = SHARED / "fer2013.npz"
    if not path.exists():
        pytest.fail(f"{path} missing: the shared data folder must sit beside the project root")
    res = evaluate_file(artifact_path(name, key), path, "test")
    floor, tol = entry["accuracy_floor"][key], floor_tolerance(entry, key)
    assert res.accuracy >= floor - tol, (f"{name}/{key}: accuracy {res.accuracy:.4%} fell below its floor {floor:.4%} "
                                         f"(tolerance {tol:.2%} on {int8_class()})")
