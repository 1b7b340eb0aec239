"""Export to every CPU format: metadata round-trip, full-int8 dtype rule, validation against Keras."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_emotion.metadata import read_metadata
from edge_emotion.runtime.zoo import artifact_path, load_index

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fmt,precision", [("tflite", "int8"), ("tflite", "fp16"), ("tflite", "fp32"),
                                           ("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "int8")])
def test_export_every_cpu_format(default_keras, fer_npz, fmt, precision):
    from edge_emotion.export import export_model

    res = export_model(default_keras, fmt, precision, data=fer_npz, n_validate=1000, show_progress=False)
    assert res.path.exists() and res.path.suffix == f".{fmt}"
    v = res.validation
    assert v.passed and v.n == 1000
    assert v.agreement >= (0.98 if precision == "int8" else 0.999)
    assert v.predicted_classes >= 5  # not collapsed onto a few labels
    meta = read_metadata(res.path)
    src_meta = read_metadata(default_keras)
    assert meta.labels == src_meta.labels and meta.input_size == src_meta.input_size
    assert (meta.format, meta.precision) == (fmt, precision)
    from edge_emotion.metadata import sha256_file

    assert meta.source_sha256 == sha256_file(default_keras)
    saved = json.loads((res.path.parent / (res.path.name + ".validation.json")).read_text())
    assert saved["agreement"] == v.agreement


def test_int8_tflite_is_full_integer(default_keras, fer_npz):
    from edge_emotion.export import export_model
    from edge_emotion.export.tflite import tensor_dtypes

    res = export_model(default_keras, "tflite", "int8", data=fer_npz, n_calib=140, n_validate=0, show_progress=False)
    dt = tensor_dtypes(res.path)
    assert dt["io"] == {"int8"}
    assert "float32" not in dt["activations"] and "float16" not in dt["activations"]
    # and the bundled one too
    bundled = artifact_path(load_index()["default"], "tflite_int8")
    assert tensor_dtypes(bundled)["io"] == {"int8"} and "float32" not in tensor_dtypes(bundled)["activations"]


def test_calibration_is_balanced_real_images(fer_npz):
    from edge_emotion.export.calibration import calibration_images

    x = calibration_images(fer_npz, 700)
    assert x.shape == (700, 48, 48, 1) and x.dtype == np.uint8
    assert x.std() > 20  # real faces, not constant or noise-free filler


def test_failed_validation_keeps_the_artifact_aside(default_keras, fer_npz):
    from edge_emotion.export import ExportValidationError, export_model

    with pytest.raises(ExportValidationError, match="rejected"):
        export_model(default_keras, "onnx", "int8", data=fer_npz, n_calib=70, n_validate=100, threshold=1.01, show_progress=False,
                     out=default_keras.parent / "strict.onnx")
    assert (default_keras.parent / "strict.onnx.rejected").exists()
    assert not (default_keras.parent / "strict.onnx").exists()


def test_engine_export_says_why_without_a_gpu(default_keras, capsys):
    from edge_emotion.cli import main
    from edge_emotion.runtime.backends.tensorrt import gpu_available

    ok, why = gpu_available()
    if ok:
        pytest.skip("GPU present")
    rc = main(["export", str(default_keras), "--format", "engine", "--precision", "fp16"])
    err = capsys.readouterr().err
    assert rc != 0 and "TensorRT" in err and len(err.strip().splitlines()) == 1


def test_evaluate_takes_exported_artifacts(fer_npz):
    from edge_emotion.evaluate import evaluate_file

    path = artifact_path(load_index()["default"], "tflite_int8")
    r = evaluate_file(path, fer_npz, "test", limit=500, tta=True)
    assert r.n == 500 and 0.3 < r.accuracy <= 1 and r.tta_accuracy is not None
    assert sum(m["support"] for m in r.per_class.values()) == 500
    clean = r.extra["without_train_copies"]  # PrivateTest images with a pixel-identical copy in its training data
    assert clean["n"] + clean["excluded"] == 500 and clean["excluded"] > 0 and 0.3 < clean["accuracy"] <= 1
    # a refit (the default is one today) trained on PublicTest too: the copies there are left out as well
    from edge_emotion.datasets import exact_copies_in, load_dataset

    ds = load_dataset(fer_npz)
    seen = [ds["train"].x] + ([ds["val"].x] if read_metadata(path).trained_on_val else [])
    assert clean["excluded"] == int(exact_copies_in(ds["test"].x[:500], np.concatenate(seen)).sum())
    assert clean.get("val_in_train", False) == read_metadata(path).trained_on_val
    v = evaluate_file(path, fer_npz, "val", limit=200)  # a refit's val figure says it was trained on
    assert v.extra.get("val_in_train", False) == read_metadata(path).trained_on_val
    assert ("not a held-out figure" in v.summary()) == read_metadata(path).trained_on_val


def test_leakage_free_figure_of_a_refit_leaves_out_copies_of_val_too(fer_npz):
    """A refit's val split is training data: the test images copied there are left out of its leakage-free figure."""
    from edge_emotion.datasets import load_dataset
    from edge_emotion.evaluate import training_images
    from edge_emotion.metadata import ModelMetadata

    ds = load_dataset(fer_npz)
    plain = ModelMetadata(labels=list(ds.label_set.labels), label_set="fer7")
    for refit_record in ({"refit": True}, {"config": {"refit": True}}, {"final_weights": {"refit": True}}):
        refit = ModelMetadata(labels=list(ds.label_set.labels), label_set="fer7", extra=refit_record)
        assert refit.trained_on_val and not plain.trained_on_val
        x, val_in = training_images(ds, refit)
        assert val_in and len(x) == len(ds["train"].x) + len(ds["val"].x)
    x, val_in = training_images(ds, plain)
    assert not val_in and x is ds["train"].x
