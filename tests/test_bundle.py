"""Bundling a finished run into the package, including a model shipped without its Keras file."""

from __future__ import annotations

import json

import pytest

from edge_emotion.errors import BackendUnavailableError
from edge_emotion.metadata import read_metadata, sha256_file


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    """Empty package-models and zoo folders that the runtime's zoo reads instead of the project's."""
    from edge_emotion.runtime import zoo

    d = tmp_path / "models"
    monkeypatch.setattr(zoo, "MODELS_DIR", d)
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "zoo")
    monkeypatch.setattr(zoo, "INDEX", d / "index.json")
    zoo.load_index.cache_clear()
    yield d
    zoo.load_index.cache_clear()


def test_bundle_without_keras(tiny_run, models_dir, monkeypatch):
    """--no-keras: the artifacts come from the run's model and are validated against it; the device artifact
    goes into the package with the card, the report stays in the zoo, and the index records the Keras model
    it no longer holds."""
    from edge_emotion.export import bundle as bundle_mod
    from edge_emotion.export.bundle import bundle, main, write_cards
    from edge_emotion.runtime.zoo import artifacts, resolve_model

    zoo_dir = models_dir.parent / "zoo"
    # fp32: the two-epoch tiny model is near chance, and its near-tied top classes flip under int8 noise, so an int8
    # export of it fails the agreement gate on some runs (the gate is right to; it is not what this test is about).
    # The format table is told that fp32 TFLite is a device artifact, so it takes the package's path.
    monkeypatch.setattr(bundle_mod, "ships_in_package", lambda fmt, precision: (fmt, precision) == ("tflite", "fp32"))
    # nothing of an earlier bundling of the same name may survive: its Keras copy, its report (and the report of
    # the run it started from), an export this bundling does not make, a rejected export's report
    old = {zoo_dir / "tiny" / "model.keras", zoo_dir / "tiny" / "model_fp16.onnx", zoo_dir / "tiny" / "report" / "start" / "report.md",
           zoo_dir / "tiny" / "report" / "rejected_model_int8.tflite.validation.json", models_dir / "tiny" / "model_int8.onnx"}
    for f in old:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"old")
    # two formats, not in index.json's (sorted) order: the card lists them the same way when rewritten from the index
    bundle(tiny_run, "tiny", False, ["tflite:fp32", "onnx:fp32"], None, 64, ship_keras=False, models_dir=models_dir,
           zoo_dir=zoo_dir)
    dest, repo = models_dir / "tiny", zoo_dir / "tiny"
    assert not [f for f in old if f.exists()] and not (repo / "model.keras.json").exists()
    assert not (repo / "report" / "start").exists()  # the tiny run started from scratch
    entry = json.loads((models_dir / "index.json").read_text())["models"]["tiny"]
    src = tiny_run / "model.keras"
    assert entry["keras"]["sha256"] == sha256_file(src) and entry["keras"]["size_bytes"] == src.stat().st_size
    assert "file" not in entry["keras"] and 0.0 < entry["keras"]["test_accuracy"] <= 1.0
    art = dest / entry["artifacts"]["tflite_fp32"]["file"]
    assert art.is_file() and sorted(p.name for p in dest.iterdir()) == ["MODEL_CARD.md", art.name]  # nothing else
    assert read_metadata(art).source_sha256 == entry["keras"]["sha256"]
    assert entry["artifacts"]["tflite_fp32"]["n_test"] == 3589  # validated on the full PrivateTest split
    assert (repo / "report" / "metadata.json").is_file() and (repo / (art.name + ".validation.json")).is_file()
    assert artifacts("tiny") == {"tflite_fp32": art, "onnx_fp32": repo / "model_fp32.onnx"}  # the device's, the zoo's

    card = (dest / "MODEL_CARD.md").read_text()
    assert "not in the repository" in card and entry["keras"]["sha256"][:12] in card
    assert f"{entry['keras']['test_accuracy']:.2%}" in card and "(../../zoo/tiny/report/metadata.json)" in card
    assert "In the wheel: `model_fp32.tflite`" in card and "research and evaluation use only" in card
    # the card can be rewritten later from the index and the report alone, and names exports the gate rejected
    (dest / "MODEL_CARD.md").unlink()
    write_cards(models_dir, zoo_dir)
    assert (dest / "MODEL_CARD.md").read_text() == card
    rejected = {"artifact": "model_int8.onnx", "n": 3589, "agreement": 0.9019, "max_prob_diff": 0.201,
                "accuracy_artifact": 0.5138, "accuracy_source": 0.5247, "threshold": 0.98, "passed": False}
    (repo / "report" / "rejected_model_int8.onnx.validation.json").write_text(json.dumps(rejected))
    write_cards(models_dir, zoo_dir)
    assert "`model_int8.onnx`: agreement with Keras 90.19% (gate 98%), accuracy 51.38%" in (dest / "MODEL_CARD.md").read_text()

    assert resolve_model("tiny", "litert") == art
    with pytest.raises(BackendUnavailableError, match="published without its Keras model.*litert or onnxruntime"):
        resolve_model("tiny", "keras")

    # a flip-averaged model's card says so and gives the averaging's gain on PublicTest, where it was chosen
    index = json.loads((models_dir / "index.json").read_text())
    index["models"]["tiny"]["flip_average"] = True
    (models_dir / "index.json").write_text(json.dumps(index))
    write_cards(models_dir, zoo_dir)
    val = json.loads((repo / "report" / "report.json").read_text())["val"]
    card = (dest / "MODEL_CARD.md").read_text()
    assert "mirror image inside its graph" in card and "(fp32, flip-averaged; not shipped" in card
    assert f"Chosen on PublicTest ({val['n']:,} images): {val['tta_accuracy']:.2%} with the averaging against {val['accuracy']:.2%}" in card

    # a reference model keeps its card (and everything else) in the zoo
    index = json.loads((models_dir / "index.json").read_text())
    index["models"]["tiny"]["reference"] = True
    (models_dir / "index.json").write_text(json.dumps(index))
    write_cards(models_dir, zoo_dir)
    assert "A reference model" in (repo / "MODEL_CARD.md").read_text()

    with pytest.raises(SystemExit):  # the CLI insists on a run and a name
        main(["--no-keras"])


def test_bundle_refuses_an_empty_artifact_list(tmp_path, models_dir):
    from edge_emotion.export.bundle import bundle

    with pytest.raises(ValueError, match="at least one FORMAT:PRECISION"):
        bundle(tmp_path, "tiny", False, [], None, 64, models_dir=models_dir)


def test_card_explains_a_rejected_export_by_what_was_measured(tmp_path):
    """A rejected export is listed with its figures; the card calls it tie-flipping only when the accuracy held."""
    from edge_emotion.export.bundle import _rejected_lines

    (tmp_path / "report").mkdir()
    assert _rejected_lines(tmp_path) == []
    base = {"n": 3589, "max_prob_diff": 0.6, "threshold": 0.98}
    for name, art, src in (("a_int8.tflite", 0.5659, 0.6344), ("b_int8.onnx", 0.5138, 0.5247)):
        (tmp_path / "report" / f"rejected_{name}.validation.json").write_text(json.dumps(
            {**base, "artifact": name, "agreement": 0.8, "accuracy_artifact": art, "accuracy_source": src}))
    lines = _rejected_lines(tmp_path)
    lost = next(line for line in lines if "a_int8.tflite" in line)
    ties = next(line for line in lines if "b_int8.onnx" in line)
    assert "falls 6.9 points" in lost and "56.59% against 63.44%" in lost and "barely moves" not in lost
    assert "barely moves" in ties and "rejected_b_int8.onnx.validation.json" in ties


def test_card_summarises_a_calibration_sweep_by_size_and_by_draw(tmp_path):
    """A run with a calibration sweep (benchmarks.calibration_size) gets one line: the mean per size and how far the
    draws of one size differ, so a reader can tell a real size effect from the luck of the draw."""
    from edge_emotion.export.bundle import _calibration_lines

    (tmp_path / "report").mkdir()
    assert _calibration_lines(tmp_path) == []
    rows = [{"images": n, "seed": s, "accuracy": a} for n, s, a in
            ((500, 0, 0.70), (500, 1, 0.71), (2000, 0, 0.702), (2000, 1, 0.704))]
    (tmp_path / "report" / "calibration_size.json").write_text(json.dumps(
        {"model": "/x/wd_s2/model.keras", "flip_average": True, "note": "the recipe on Training alone", "split": "val", "n": 3589, "fp32_accuracy": 0.7021,
         "rows": rows}))
    (line,) = [x for x in _calibration_lines(tmp_path) if x]
    assert "`wd_s2/model.keras` (flip-averaged), the recipe on Training alone, scored on PublicTest (3,589 faces; its fp32 graph 70.21%)" in line
    assert "(2 draws each): 500: 70.50 %, 2,000: 70.30 %" in line and "differ by up to 1.00 point" in line
    assert "report/calibration_size.json" in line


def test_card_names_each_teacher_by_its_run(tmp_path):
    """A distilled model's card tells its teachers apart (several runs' teachers are all model.keras) and says how
    well their soft targets matched the PublicTest labels."""
    from edge_emotion.export.bundle import _soft_target_lines

    cfg = {"distill_weight": 0.5, "distill_temperature": 2.0, "teachers": ["/r/deep/model.keras", "/r/swa/model.keras"]}
    soft = tmp_path / "soft_targets.json"
    assert "`deep/model.keras`, `swa/model.keras`" in _soft_target_lines(cfg, soft)[0]  # before the cache exists
    soft.write_text(json.dumps({"val_accuracy": 0.7141, "val_images": 3589, "train_label_agreement": 0.8492,
                                "teachers": [{"path": p, "sha256": c * 64} for p, c in zip(cfg["teachers"], "ab")]}))
    line = _soft_target_lines(cfg, soft)[0]
    assert "0.5 x the FER-2013 label + 0.5 x a soft target" in line and "temperature 2.0" in line
    assert "`deep/model.keras` (sha256 `aaaaaaaaaaaa…`), `swa/model.keras` (sha256 `bbbbbbbbbbbb…`)" in line
    assert "PublicTest label on 71.41% of 3,589 images" in line


def test_card_says_when_candidates_were_scored_in_another_precision():
    """A finalisation from before candidates were scored in float32 recorded bf16 figures: the card says so, since the
    float32 figures of the same model (ingredients, results) differ from them; a float32 record reads as before."""
    from edge_emotion.export.bundle import _final_weights_lines

    chosen = {"name": "average of epochs 79-80 + BN refresh", "epochs": [79, 80], "refresh_bn": True, "val_accuracy": 0.696}
    fw = {"best_single_epoch_val_accuracy": 0.6707, "chosen": chosen, "candidates": [chosen]}
    for scored, flagged in ((None, False), ("float32", False), ("mixed_bfloat16", True)):
        lines = _final_weights_lines({**fw, **({"scored_in": scored} if scored else {})})
        assert "69.60% against 67.07%" in lines[0] and "79-80 + BN refresh: 69.60%" in lines[1]
        assert ("in mixed_bfloat16 compute" in lines[1] and "float32" in lines[1]) == flagged


def test_a_refit_models_card_never_quotes_publictest_as_held_out(tmp_path):
    """A refit trains on PublicTest: its card says the weights were set by rule, gives its ingredients row no
    PublicTest figure and no gain, and the gains of the rows before it still read against each other."""
    from edge_emotion.export.bundle import _final_weights_lines, _ingredient_lines
    from edge_emotion.train.finalize import lost_to_start

    chosen = {"name": "average of epochs 1-8 + BN refresh", "epochs": list(range(1, 9)), "refresh_bn": True,
              "val_accuracy": None}
    fw = {"refit": True, "rule": "the average of the last 8 epochs, BatchNorm statistics re-estimated where the model has them",
          "chosen": chosen, "candidates": []}
    line = _final_weights_lines(fw)
    assert len(line) == 1 and "set by rule" in line[0] and "nothing was chosen on PublicTest" in line[0]
    assert lost_to_start(fw) is None  # nothing was scored against a start, so nothing refuses the bundle
    rows = [{"step": "start", "val_accuracy": 0.67, "n": 3589}, {"step": "+ averaging", "val_accuracy": 0.6935, "n": 3589},
            {"step": "refit on Training + PublicTest", "val_accuracy": None, "n": 3589},
            {"step": "tried", "val_accuracy": 0.68, "n": 3589, "kept": False}]
    (tmp_path / "ingredients.json").write_text(json.dumps(rows))
    table = _ingredient_lines(tmp_path / "ingredients.json")
    assert "| + averaging | 69.35% | +2.35% |" in table
    assert "| refit on Training + PublicTest | not held out | |" in table
    assert "| tried | 68.00% | -1.35% |" in table  # against the last measured kept row
    assert any(ln.startswith("Tried and not kept (gain against the recipe as it stood") and ln.endswith("; on Training alone):")
               for ln in table)


def test_ingredient_gains_read_against_the_recipe_they_were_tried_on_in_the_same_form(tmp_path):
    """A one-pass figure is compared with the recipe's one-pass figure and a flip-averaged one with its flip figure, and
    an ingredient tried before a later step changed the recipe reads against the recipe it was tried on: a card that
    set a one-pass row against a flip figure understated it by the flip's gain."""
    from edge_emotion.export.bundle import _ingredient_lines

    def row(step, acc, flip, kept=True):
        return {"step": step, "val_accuracy": acc, "flip_average": flip, "kept": kept, "n": 3589}

    rows = [row("start", 0.6704, False), row("+ stage 2", 0.6935, False), row("+ flip", 0.6969, True),
            row("deeper, one pass", 0.6946, False, kept=False), row("deeper, flip", 0.7102, True, kept=False),
            row("+ decay, one pass", 0.6966, False), row("+ decay, flip", 0.7021, True),
            row("refit", None, True), row("tried on the decay recipe, flip", 0.7000, True, kept=False)]
    (tmp_path / "ingredients.json").write_text(json.dumps(rows))
    table = _ingredient_lines(tmp_path / "ingredients.json")
    assert "| + flip | 69.69% | +0.34% |" in table  # the first flip row: against the one-pass step before it
    assert "| + decay, one pass | 69.66% | +0.31% |" in table and "| + decay, flip | 70.21% | +0.52% |" in table
    assert "| deeper, one pass | 69.46% | +0.11% |" in table and "| deeper, flip | 71.02% | +1.33% |" in table
    assert "| tried on the decay recipe, flip | 70.00% | -0.21% |" in table


def test_a_run_started_from_a_refit_quotes_no_val_figure_of_its_start(tmp_path):
    """The second stage of a refit starts from the first stage's model, whose val figures are on training images: the
    card names that start without its 'best val accuracy', and the starting model's summary records that it was a refit."""
    from edge_emotion.export.bundle import _start_lines
    from edge_emotion.metadata import ModelMetadata
    from edge_emotion.train.finalize import _init_summary

    start = tmp_path / "model.keras"
    start.write_bytes(b"stand-in for a .keras file")  # only hashed here
    meta = ModelMetadata(model_name="edge_cnn", label_set="fer7", labels=["a", "b"], input_size=(48, 48),
                         extra={"best_val_accuracy": 0.771, "epochs_run": 80, "config": {"refit": True}})
    (tmp_path / "model.keras.json").write_text(meta.to_json())
    init = _init_summary(str(start))
    assert init["refit"] is True and init["best_val_accuracy"] == 0.771
    cfg = {"init_from": str(start), "lr_schedule": "constant"}
    line = _start_lines(cfg, {"init_from": init})[0]
    assert "a refit: PublicTest was in its training data" in line and "77.10%" not in line
    meta.extra["config"]["refit"] = False  # a start trained on Training alone keeps its held-out figure
    (tmp_path / "model.keras.json").write_text(meta.to_json())
    init = _init_summary(str(start))
    assert "refit" not in init and "best val accuracy 77.10%" in _start_lines(cfg, {"init_from": init})[0]
    assert "final weights" not in _start_lines(cfg, {"init_from": init})[0]  # none recorded: none quoted
    # a start whose final weights were chosen on val (BN refresh, an average) quotes that figure beside its best epoch's
    meta.extra["final_weights"] = {"best_single_epoch_val_accuracy": 0.674, "chosen": {"val_accuracy": 0.6966}}
    (tmp_path / "model.keras.json").write_text(meta.to_json())
    init = _init_summary(str(start))
    assert init["final_val_accuracy"] == 0.6966
    assert "best val accuracy 77.10%, its final weights 69.66%" in _start_lines(cfg, {"init_from": init})[0]


def test_a_card_names_every_model_its_run_descends_from_and_sums_their_wall_time():
    """A FER+ model fine-tuned from a FER-2013 model that was itself continued from an 80-epoch run: the card names
    all three starts by hash, nearest first, and its total wall time counts them all."""
    from edge_emotion.export.bundle import _start_lines, _wall_in_all

    def start(sha, labels, epochs, minutes, up=None):
        return {"sha256": sha * 64, "model_name": "edge_cnn", "label_set": labels, "epochs_run": epochs,
                "train_wall_seconds": minutes * 60, "git_revision": "0" * 40, "best_val_accuracy": 0.5,
                **({"init_from": up} if up else {})}

    ex = {"train_wall_seconds": 8 * 60,
          "init_from": start("a", "ferplus8", 10, 10, start("b", "fer7", 8, 11, start("c", "fer7", 80, 128)))}
    lines = _start_lines({"init_from": "/somewhere/model.keras", "lr_schedule": "constant"}, ex)
    assert len(lines) == 3 and lines[0].startswith("- Started from `model.keras`") and "ferplus8, 10 epochs" in lines[0]
    assert lines[1].startswith("  - that one started from sha256 `bbbb") and "fer7, 8 epochs in 11 min" in lines[1]
    assert lines[2].startswith("  - that one started from sha256 `cccc") and "80 epochs in 128 min" in lines[2]
    assert _wall_in_all(ex) == " With the 3 models it descends from 149 min: 157 min in all."
    one = {"train_wall_seconds": 60, "init_from": start("d", "fer7", 80, 142)}
    assert _wall_in_all(one) == " With the starting model's 142 min: 143 min in all."
    assert _wall_in_all({"train_wall_seconds": 60}) == "" and len(_start_lines({"init_from": "m.keras"}, one)) == 1


@pytest.mark.parametrize("chosen, start, refused", [
    (None, 0.6743, True),  # measured: seed-7 edge_cnn continued at a constant 3e-4, best epoch 65.17 % vs its start
    ({"name": "average of epochs 6-8 + BN refresh", "epochs": [6, 7, 8], "refresh_bn": True, "val_accuracy": 0.6800},
     0.6743, False),
    (None, None, False),  # a run trained from scratch has no starting model to lose to
])
def test_bundle_refuses_a_continued_run_that_lost_to_its_start(tmp_path, models_dir, capsys, chosen, start, refused):
    """Finalisation only warns when a continued run ends below the model it started from, and its model.keras is
    then this run's best epoch: bundling it would publish the worse model, so the bundler stops and says why."""
    from edge_emotion.export.bundle import bundle

    fw = {"best_single_epoch_val_accuracy": 0.6517, "chosen": chosen, "candidates": [],
          **({"starting_model_val_accuracy": start} if start is not None else {})}
    (tmp_path / "model.keras.json").write_text(json.dumps(
        {"extra": {"final_weights": fw, "config": {"init_from": "runs/start/model.keras"}}}))
    if refused:
        with pytest.raises(ValueError, match=r"65\.17% on val, below the 67\.43% .*runs/start/model\.keras"):
            bundle(tmp_path, "tiny", False, ["tflite:int8"], None, 64, models_dir=models_dir,
                   zoo_dir=models_dir.parent / "zoo")
        assert not (models_dir.parent / "zoo").exists() and not models_dir.exists()  # refused before writing anything
        from edge_emotion.export.bundle import main

        with pytest.raises(SystemExit) as exc:  # the CLI says it in one line, no traceback
            main([str(tmp_path), "--name", "tiny", "--artifacts", "tflite:int8"])
        assert exc.value.code == 1
        assert "below the 67.43%" in capsys.readouterr().err
    else:  # past the check, the bundler goes on and fails later on this fake run's missing model file
        with pytest.raises(FileNotFoundError):
            bundle(tmp_path, "tiny", False, ["tflite:int8"], None, 64, models_dir=models_dir,
                   zoo_dir=models_dir.parent / "zoo")


def test_a_continued_run_keeps_its_starting_runs_report(tmp_path):
    from edge_emotion.export.bundle import START_REPORT_FILES, _copy_start_report

    first = tmp_path / "first"
    first.mkdir()
    for f in START_REPORT_FILES:
        (first / f).write_text(f"first run's {f}")
    (first / "examples_test.png").write_text("not kept")
    _copy_start_report(str(first / "model.keras"), tmp_path / "report" / "start")
    assert sorted(p.name for p in (tmp_path / "report" / "start").iterdir()) == sorted(START_REPORT_FILES)
    assert (tmp_path / "report" / "start" / "history.csv").read_text() == "first run's history.csv"
    # the starting run's folder is gone: nothing is invented
    _copy_start_report(str(tmp_path / "gone" / "model.keras"), tmp_path / "report2" / "start")
    assert not (tmp_path / "report2").exists()


def test_bundling_refuses_a_run_inside_the_folders_it_replaces(tmp_path):
    from edge_emotion.export.bundle import _check_outside

    inside = tmp_path / "zoo" / "tiny" / "run"
    inside.mkdir(parents=True)
    with pytest.raises(ValueError, match="inside.*bundle from the training run's folder"):
        _check_outside(inside, [tmp_path / "zoo" / "tiny"])
    assert inside.is_dir()


def test_a_failed_export_leaves_the_earlier_bundling_untouched(tiny_run, models_dir, monkeypatch):
    import edge_emotion.export as export_mod
    from edge_emotion.export import ExportValidationError
    from edge_emotion.export.bundle import bundle

    zoo_dir = models_dir.parent / "zoo"
    earlier = {models_dir / "tiny" / "model_int8.tflite": b"earlier", zoo_dir / "tiny" / "model.keras": b"earlier",
               models_dir / "index.json": json.dumps({"default": "tiny", "models": {"tiny": {"artifacts": {}}}}).encode()}
    for f, content in earlier.items():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content)

    def failing_export(source, fmt, precision, out, **kw):
        (out / "model_int8.tflite.rejected").write_bytes(b"rejected")
        raise ExportValidationError("model_int8.tflite rejected (agreement 90.00% < 98.00%)")

    monkeypatch.setattr(export_mod, "export_model", failing_export)
    with pytest.raises(ExportValidationError):
        bundle(tiny_run, "tiny", False, ["tflite:int8"], None, 64, models_dir=models_dir, zoo_dir=zoo_dir)
    assert {f: f.read_bytes() for f in earlier} == earlier  # what index.json describes is still there
    assert sorted(p.name for p in models_dir.iterdir()) == ["index.json", "tiny"]  # no half-built package folder
    assert (zoo_dir / ".tiny.staging" / "model_int8.tflite.rejected").is_file()  # kept in the zoo, for a look
