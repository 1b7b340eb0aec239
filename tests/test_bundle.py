"""Bundling a finished run into the package, including a model shipped without its Keras file."""

from __future__ import annotations

import json

import pytest

from edge_emotion.errors import BackendUnavailableError
from edge_emotion.metadata import read_metadata, sha256_file


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    """An empty models folder that the runtime's zoo reads instead of the package's."""
    from edge_emotion.runtime import zoo

    d = tmp_path / "models"
    monkeypatch.setattr(zoo, "MODELS_DIR", d)
    monkeypatch.setattr(zoo, "INDEX", d / "index.json")
    zoo.load_index.cache_clear()
    yield d
    zoo.load_index.cache_clear()


def test_bundle_without_keras(tiny_run, models_dir):
    """--no-keras: the artifacts come from the run's model and are validated against it; the package gets
    the artifacts, the report and the card, and the index records the Keras model it no longer holds."""
    from edge_emotion.export.bundle import bundle, main, write_cards
    from edge_emotion.runtime.zoo import resolve_model

    # fp32: the two-epoch tiny model is near chance, and its near-tied top classes flip under int8 noise, so an int8
    # export of it fails the agreement gate on some runs (the gate is right to; it is not what this test is about)
    # a stale copy from an earlier bundling of the same name must not survive
    (models_dir / "tiny").mkdir(parents=True)
    (models_dir / "tiny" / "model.keras").write_bytes(b"old")
    bundle(tiny_run, "tiny", False, ["tflite:fp32"], None, 64, ship_keras=False, models_dir=models_dir)
    dest = models_dir / "tiny"
    assert not (dest / "model.keras").exists() and not (dest / "model.keras.json").exists()
    entry = json.loads((models_dir / "index.json").read_text())["models"]["tiny"]
    src = tiny_run / "model.keras"
    assert entry["keras"]["sha256"] == sha256_file(src) and entry["keras"]["size_bytes"] == src.stat().st_size
    assert "file" not in entry["keras"] and 0.0 < entry["keras"]["test_accuracy"] <= 1.0
    art = dest / entry["artifacts"]["tflite_fp32"]["file"]
    assert read_metadata(art).source_sha256 == entry["keras"]["sha256"]
    assert entry["artifacts"]["tflite_fp32"]["n_test"] == 3589  # validated on the full PrivateTest split
    assert (dest / "report" / "metadata.json").is_file()

    card = (dest / "MODEL_CARD.md").read_text()
    assert "not shipped" in card and entry["keras"]["sha256"][:12] in card
    assert f"{entry['keras']['test_accuracy']:.2%}" in card and "report/metadata.json" in card
    # the card can be rewritten later from the index and the report alone, and names exports the gate rejected
    (dest / "MODEL_CARD.md").unlink()
    write_cards(models_dir)
    assert (dest / "MODEL_CARD.md").read_text() == card
    rejected = {"artifact": "model_int8.onnx", "n": 3589, "agreement": 0.9019, "max_prob_diff": 0.201,
                "accuracy_artifact": 0.5138, "accuracy_source": 0.5247, "threshold": 0.98, "passed": False}
    (dest / "report" / "rejected_model_int8.onnx.validation.json").write_text(json.dumps(rejected))
    write_cards(models_dir)
    assert "`model_int8.onnx`: agreement with Keras 90.19% (gate 98%), accuracy 51.38%" in (dest / "MODEL_CARD.md").read_text()

    assert resolve_model("tiny", "litert") == art
    with pytest.raises(BackendUnavailableError, match="ships without its Keras model.*litert or onnxruntime"):
        resolve_model("tiny", "keras")

    with pytest.raises(SystemExit):  # the CLI insists on a run and a name
        main(["--no-keras"])


def test_bundle_refuses_an_empty_artifact_list(tmp_path, models_dir):
    from edge_emotion.export.bundle import bundle

    with pytest.raises(ValueError, match="at least one FORMAT:PRECISION"):
        bundle(tmp_path, "tiny", False, [], None, 64, models_dir=models_dir)
