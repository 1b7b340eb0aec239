"""The format table, model metadata in every artifact, bundled model integrity, damaged files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge_emotion.errors import BackendUnavailableError, ModelError
from edge_emotion.formats import FORMATS, artifact_name, format_by_name, format_for_path
from edge_emotion.metadata import ModelMetadata, read_metadata, write_tflite_metadata
from edge_emotion.runtime.backends import BACKENDS, load_backend
from edge_emotion.runtime.zoo import MODELS_DIR, artifact_path, load_index, resolve_model


def test_every_format_has_a_backend_and_an_exporter():
    from edge_emotion.export import EXPORTERS

    for fmt in FORMATS:
        assert fmt.backend in BACKENDS
        if fmt.name != "keras":
            assert fmt.name in EXPORTERS
    assert format_for_path("a/b/model_int8.tflite").name == "tflite"
    assert artifact_name("model", format_by_name("onnx"), "fp16") == "model_fp16.onnx"
    with pytest.raises(ValueError, match="unknown model suffix"):
        format_for_path("model.pt")
    with pytest.raises(ValueError, match="supports precisions"):
        artifact_name("model", format_by_name("tflite"), "int4")


def test_bundled_default_exists_and_carries_its_metadata():
    index = load_index()
    assert index["default"] in index["models"]
    for name, entry in index["models"].items():
        for key in entry["artifacts"]:
            meta = read_metadata(artifact_path(name, key))
            assert meta.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"] or meta.label_set != "fer7"
            assert f"{meta.format}_{meta.precision}" == key
            assert meta.input_size == (48, 48) and meta.color == "gray"
            assert meta.source_sha256 and len(meta.source_sha256) == 64


def test_default_on_cpu_is_int8_tflite():
    path = resolve_model(None)
    assert path.suffix == ".tflite" and read_metadata(path).precision == "int8"


def test_damaged_bundled_model_is_refused(tmp_path, monkeypatch):
    from edge_emotion.runtime import zoo

    for backend in ("litert", "onnxruntime"):
        chosen = resolve_model(None, backend)
        fake = tmp_path / backend / "models"
        shutil.copytree(MODELS_DIR, fake)
        p = fake / chosen.parent.name / chosen.name
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
        monkeypatch.setattr(zoo, "MODELS_DIR", fake)
        with pytest.raises(ModelError, match="SHA-256"):
            zoo.resolve_model(None, backend=backend)
        monkeypatch.undo()


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_truncated_and_random_model_files(tmp_path, suffix):
    from edge_emotion import EmotionDetector

    src = resolve_model(None, "litert" if suffix == ".tflite" else "onnxruntime")
    trunc = tmp_path / f"trunc{suffix}"
    trunc.write_bytes(src.read_bytes()[:1000])
    rand = tmp_path / f"random{suffix}"
    rand.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    for p in (trunc, rand, empty):
        with pytest.raises(ModelError) as e:
            EmotionDetector(model=p)
        assert str(p) in str(e.value)


def test_missing_model_and_unknown_suffix(tmp_path):
    from edge_emotion import EmotionDetector

    with pytest.raises(ModelError, match="not found"):
        EmotionDetector(model=tmp_path / "nope.tflite")
    with pytest.raises(ValueError, match="unknown model suffix"):
        EmotionDetector(model=tmp_path / "model.pt")


def test_tflite_without_metadata_is_refused(tmp_path):
    src = resolve_model(None, "litert")
    data = src.read_bytes()
    import zipfile, io

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        start = min(i.header_offset for i in zf.infolist())
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(data[:start])
    load_backend(bare)  # the model itself still loads
    with pytest.raises(ModelError, match="carries no edge_emotion.json"):
        read_metadata(bare)


def test_metadata_for_another_model_is_refused(tmp_path):
    from edge_emotion.runtime.classifier import EmotionClassifier

    src = resolve_model(None, "litert")
    wrong = tmp_path / "wrong.tflite"
    shutil.copy(src, wrong)
    write_tflite_metadata(wrong, read_metadata(src).derive(input_size=[64, 64]))
    with pytest.raises(ModelError, match="metadata belongs to another model"):
        EmotionClassifier(wrong)
    write_tflite_metadata(wrong, read_metadata(src).derive(labels=["a", "b", "c"]))
    clf = EmotionClassifier(wrong)
    with pytest.raises(ModelError, match="outputs 7 classes"):
        clf.predict(np.zeros((1, 48, 48, 1), np.float32))


def test_metadata_round_trip_and_validation():
    m = ModelMetadata(labels=["a", "b"], input_size=(32, 40), color="rgb", mean=127.5, std=127.5)
    assert ModelMetadata.from_json(m.to_json()) == m
    assert m.input_shape == (32, 40, 3)
    with pytest.raises(ModelError, match="duplicate"):
        ModelMetadata(labels=["a", "a"])
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelMetadata.from_json("{nope")
    with pytest.raises(ModelError, match="lacks required keys"):
        ModelMetadata.from_dict({"input_size": [48, 48]})


def test_missing_backend_is_reported(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ort(name, *a, **k):
        if name.startswith("onnxruntime"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'edge-emotion\[onnx\]'"):
        load_backend(resolve_model(None, "litert").with_name("model_int8.onnx"))


def test_tensorrt_path_is_importable_and_says_why_it_cannot_run(tmp_path):
    from edge_emotion.runtime.backends.tensorrt import TensorRTBackend, gpu_available

    ok, why = gpu_available()
    if ok:
        pytest.skip("a GPU is present: the GPU tests cover TensorRT")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 64)
    with pytest.raises(BackendUnavailableError) as e:
        TensorRTBackend.load(engine)
    assert why in str(e.value)


def test_no_pickle_and_no_unsafe_loading_anywhere():
    from pathlib import Path

    import edge_emotion

    for py in Path(edge_emotion.__file__).parent.rglob("*.py"):
        text = py.read_text()
        assert "import pickle" not in text and "safe_mode=False" not in text, py
        assert "allow_pickle=True" not in text, py


@pytest.mark.slow
def test_keras_model_with_code_in_it_is_refused(tmp_path):
    import keras

    from edge_emotion.runtime.backends.keras_backend import KerasBackend

    inp = keras.Input((48, 48, 1))
    out = keras.layers.Lambda(lambda x: x * 2)(inp)
    path = tmp_path / "evil.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ModelError, match="Keras cannot load this model"):
        KerasBackend.load(path)


def test_the_package_holds_only_device_artifacts_and_the_zoo_the_rest():
    """What a wheel carries is decided by the format table: int8 TFLite, int8/fp16 ONNX in the package;
    Keras sources, other precisions and reference models in the repository's zoo/ (found from a checkout)."""
    from edge_emotion.formats import ships_in_package, split_artifact_key
    from edge_emotion.runtime.zoo import ZOO_DIR, artifacts

    for name, entry in load_index()["models"].items():
        for key, path in artifacts(name).items():
            assert path is not None, f"{name}/{key} is listed but not in this checkout"
            fmt, precision = split_artifact_key(key)
            in_package = key != "keras" and ships_in_package(fmt, precision) and not entry.get("reference")
            assert path.parent == (MODELS_DIR if in_package else ZOO_DIR) / name, (name, key, path)
    packaged = {p.suffix for p in MODELS_DIR.rglob("*") if p.is_file()}
    assert packaged <= {".json", ".md", ".tflite", ".onnx"}, packaged
    assert not list(MODELS_DIR.rglob("*.png")) and not list(MODELS_DIR.rglob("*.keras"))


def test_a_file_outside_the_installed_package_says_where_it_lives(tmp_path, monkeypatch):
    """From a wheel (no zoo/ beside the package) a request for a repository-only file fails with one line."""
    from edge_emotion.runtime import zoo

    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "no-zoo")
    name = load_index()["default"]
    assert artifact_path(name, "tflite_int8").parent == MODELS_DIR / name  # device artifacts still resolve
    with pytest.raises(ModelError, match=rf"lives in the edge-emotion repository under zoo/{name}/") as e:
        artifact_path(name, "tflite_fp32")
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailableError, match="zoo/alexnet48_fer7/"):
        resolve_model("alexnet48_fer7", backend="litert")
    assert zoo.artifacts(name)["keras"] is None and zoo.artifacts(name)["tflite_int8"] is not None


def test_the_keras_backend_averages_flips_where_the_bundled_artifacts_do(fer_test, tmp_path):
    """A model bundled with --flip-average answers alike on every backend: its Keras source, run through the
    Keras backend, averages each face with its mirror image as the int8 artifacts do; the same file copied
    elsewhere is just a Keras model and runs one pass."""
    import shutil

    from edge_emotion.runtime.backends.keras_backend import KerasBackend
    from edge_emotion.runtime.zoo import artifact_path, load_index

    name = load_index()["default"]
    assert load_index()["models"][name].get("flip_average"), "the default ships flip-averaged (issue #14)"
    src = artifact_path(name, "keras")
    x = fer_test[0][:16].astype(np.float32).reshape(16, 48, 48, 1)
    bundled = KerasBackend.load(src).infer(x)[0]
    copy = tmp_path / "model.keras"
    shutil.copy(src, copy)
    one_pass = KerasBackend.load(copy)
    plain, mirrored = one_pass.infer(x)[0], one_pass.infer(x[:, :, ::-1].copy())[0]
    np.testing.assert_allclose(bundled, (plain + mirrored) / 2, atol=1e-5)
    assert np.abs(bundled - plain).max() > 1e-3  # the averaging changes the answer
