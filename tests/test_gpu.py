"""TensorRT on a GPU: build an FP16 engine from the bundled model's ONNX export and run it.

Skipped, with the reason, on machines without an NVIDIA GPU and TensorRT."""

from __future__ import annotations

import numpy as np
import pytest

from edge_emotion.runtime.backends.tensorrt import gpu_available

OK, WHY = gpu_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not OK, reason=f"GPU-only: {WHY}")]


def test_fp16_engine_matches_onnx(tmp_path, fer_test):
    import shutil

    from edge_emotion.export import export_model
    from edge_emotion.runtime.classifier import EmotionClassifier
    from edge_emotion.runtime.zoo import artifact_path, load_index

    name = load_index()["default"]
    keras = artifact_path(name, "keras")
    for f in (keras, keras.with_name(keras.name + ".json")):
        shutil.copy(f, tmp_path / f.name)
    res = export_model(tmp_path / "model.keras", "engine", "fp16", n_validate=500, show_progress=False)
    assert res.validation.passed
    x = fer_test[0][:32]
    eng = EmotionClassifier(res.path)
    ref = EmotionClassifier(artifact_path(name, "onnx_fp32"))
    a = eng.predict(eng.preprocess(list(x)))
    b = ref.predict(ref.preprocess(list(x)))
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.97
    np.testing.assert_allclose(a, b, atol=0.02)


def test_detector_engine(tmp_path, astronaut):
    from edge_emotion.export.detector import export_detector
    from edge_emotion.runtime.face_detection.blazeface import BlazeFaceDetector

    out = export_detector("full", "engine", tmp_path, validate_images=[astronaut])
    assert len(BlazeFaceDetector("full", model_path=out).detect(astronaut)) == 1
