"""Soft targets (distillation, FER+ votes), mixup, and flip averaging inside an exported graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def test_ferplus_votes_map_onto_fer7_by_name(fer_npz, ferplus_npz):
    from edge_emotion.datasets import load_ferplus
    from edge_emotion.labelsets import load_label_set
    from edge_emotion.train.soft_targets import ferplus_distribution

    fer7 = load_label_set("fer7").labels
    votes, has = ferplus_distribution(ferplus_npz, "val", fer7)
    assert votes.shape == (3589, 7) and has.dtype == bool and 3000 < has.sum() < 3589
    np.testing.assert_allclose(votes[has].sum(axis=1), 1.0, atol=1e-6)
    assert not votes[~has].any()
    # the same images' FER+ 8-class soft targets, contempt dropped and the rest renormalised, in fer7's order
    soft8 = load_ferplus(fer_npz, ferplus_npz, "soft")["val"].y
    with np.load(ferplus_npz) as v:
        rows = np.flatnonzero(v["has_votes_val"] & (np.argmax(v["votes_val"], axis=1) < 8))  # the rows load_ferplus keeps
    labels8 = load_label_set("ferplus8").labels
    mapped = soft8[:, [labels8.index(lab) for lab in fer7]]
    ok = mapped.sum(axis=1) > 0
    mapped = mapped[ok] / mapped[ok].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(votes[rows[ok]], mapped, atol=1e-6)
    # the annotators' top class agrees with the FER-2013 label on about two images in three (dataset card: ~64 %)
    with np.load(fer_npz) as d:
        y = d["y_val"]
    agree = (votes[has].argmax(axis=1) == y[has]).mean()
    assert 0.55 < agree < 0.75
    with pytest.raises(ValueError, match="no class"):
        ferplus_distribution(ferplus_npz, "val", ("happy", "bored"))


def test_mix_targets_keeps_the_label_where_there_is_no_soft_target():
    from edge_emotion.train.soft_targets import SoftTargets, mix_targets

    onehot = np.eye(3, dtype=np.float32)[[0, 2]]
    soft = SoftTargets(np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 0.0]], np.float32), np.array([True, False]), {})
    got = mix_targets(onehot, soft, 0.5)
    np.testing.assert_allclose(got, [[0.6, 0.25, 0.15], [0, 0, 1]])
    with pytest.raises(ValueError, match="share"):
        mix_targets(onehot, soft, 1.5)


def test_mixup_is_a_convex_mix_of_two_samples_and_their_targets():
    import tensorflow as tf

    from edge_emotion.train.pipeline import mixup

    n = 16
    x = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 4, 1), np.float32)
    y = np.eye(n, dtype=np.float32)  # sample i has class i: the target says which samples were mixed, and how
    xm, ym = (t.numpy() for t in mixup(tf.constant(x), tf.constant(y), 0.4, seed=3))
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, atol=1e-6)
    for i in range(n):
        w = ym[i]
        np.testing.assert_allclose(xm[i], (w[:, None, None, None] * x).sum(axis=0), atol=1e-4)
    assert (ym.max(axis=1) < 0.999).any()  # something was mixed


def test_mixup_keeps_bfloat16_images_of_mixed_precision_training():
    """Under bf16 mixed precision (picked by --mixed-precision auto on CPUs with AVX-512 BF16) the images reach mixup
    as bfloat16: it mixes them and hands back the same dtype instead of failing on a float32 x bfloat16 product."""
    import tensorflow as tf

    from edge_emotion.train.pipeline import mixup

    x = tf.cast(tf.reshape(tf.range(8 * 4 * 4, dtype=tf.float32), [8, 4, 4, 1]), tf.bfloat16)
    y = tf.eye(8)
    xm, ym = mixup(x, y, 0.4, seed=3)
    assert xm.dtype == tf.bfloat16 and ym.dtype == tf.float32
    expected = tf.einsum("ij,jhwc->ihwc", ym, tf.cast(x, tf.float32))
    np.testing.assert_allclose(tf.cast(xm, tf.float32).numpy(), expected.numpy(), rtol=1e-2, atol=0.5)


def test_a_distillation_run_trains_on_teacher_and_vote_targets(tiny_run, tmp_path, fer_npz, ferplus_npz, monkeypatch):
    """--teacher + --distill-weight + --ferplus-soft + --mixup: the targets are the documented mix, cached in the
    run folder, reused on resume and recomputed when the teachers change; the card says what the targets were."""
    from edge_emotion.datasets import load_dataset
    from edge_emotion.export.bundle import _soft_target_lines
    from edge_emotion.metadata import sha256_file
    from edge_emotion.train import soft_targets as st
    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train

    teacher = tiny_run / "model.keras"
    with pytest.raises(ValueError, match="distill_weight is 0"):
        TrainConfig(teachers=[str(teacher)])
    with pytest.raises(ValueError, match="share"):
        TrainConfig(distill_weight=1.5)
    with pytest.raises(ValueError, match="ferplus_soft given but distill_weight is 0"):
        TrainConfig(ferplus_soft=0.25)
    out = tmp_path / "kd"
    cfg = TrainConfig(model="edge_cnn", data=str(fer_npz), out=str(out), epochs=1, batch_size=64, limit=256,
                      init_from=str(teacher), teachers=[str(teacher)], distill_weight=0.5, distill_temperature=2.0,
                      ferplus_soft=0.25, ferplus_votes=str(ferplus_npz), mixup=0.2, mixed_precision="off", report=False)
    train(cfg)
    ds = load_dataset(str(fer_npz), "fer7", None, "majority", 256)
    labels = ds.label_set.labels
    with np.load(out / "soft_targets_train.npz") as c:
        y, has = c["y"], c["has"]
    t = st.teacher_distribution([teacher], ds["train"].x, labels, temperature=2.0, progress=False)
    votes, vhas = st.ferplus_distribution(ferplus_npz, "train", labels, limit=256)
    want = np.where(vhas[:, None], 0.75 * t + 0.25 * votes, t)
    assert has.all() and vhas.sum() > 200
    np.testing.assert_allclose(y, want, atol=1e-5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    # temperature 2 spreads the teacher: its top probability is lower than at temperature 1
    t1 = st.teacher_distribution([teacher], ds["train"].x, labels, temperature=1.0, progress=False)
    assert t.max(axis=1).mean() < t1.max(axis=1).mean()
    summary = json.loads((out / "soft_targets.json").read_text())
    assert 0 < summary["val_accuracy"] <= 1 and summary["teachers"][0]["sha256"] == sha256_file(teacher)

    # a resumed run reuses the cached targets without running the teacher again
    def no_teacher(*a, **k):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(st, "teacher_distribution", no_teacher)
    again = st.soft_targets(ds, "train", [str(teacher)], 2.0, 0.25, ferplus_npz, 256, cache=out / "soft_targets_train.npz")
    np.testing.assert_array_equal(again.y, y)
    # other targets (no teacher: the votes alone) are recomputed, not taken from the cache
    votes_only = st.soft_targets(ds, "train", [], 1.0, 0.0, ferplus_npz, 256, cache=out / "soft_targets_train.npz")
    np.testing.assert_allclose(votes_only.y[vhas], votes[vhas])
    assert not votes_only.has[~vhas].any()
    # but a run resuming after epochs on cached targets never trains on other ones: a changed teacher stops it
    with pytest.raises(ValueError, match="made from other .*teachers.* resuming would change its targets halfway"):
        st.soft_targets(ds, "train", [str(teacher)], 2.0, 0.25, ferplus_npz, 256, cache=out / "soft_targets_train.npz",
                        resuming=True)

    lines = _soft_target_lines(json.loads((out / "config.json").read_text()), out / "soft_targets.json")
    assert "0.5 x the FER-2013 label + 0.5 x a soft target" in lines[0] and sha256_file(teacher)[:12] in lines[0]
    assert "Beta(0.2, 0.2)" in lines[1]


def test_distillation_on_augmented_views_asks_the_teacher_about_the_batch_the_student_sees(tiny_run, tmp_path, fer_npz):
    """--distill-views augmented: each training batch's target is (1 - w) x its label + w x the teacher's
    probabilities on exactly that augmented batch (not on the original image); a teacher with another input is
    refused; the run trains, records the mode, and its card says so."""
    import keras
    import shutil

    from edge_emotion.datasets import load_dataset
    from edge_emotion.export.bundle import _soft_target_lines
    from edge_emotion.preprocessing import Preprocessing
    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train
    from edge_emotion.train.pipeline import make_augmenter, make_dataset
    from edge_emotion.train.soft_targets import _soften, teacher_on_views

    teacher = tiny_run / "model.keras"
    with pytest.raises(ValueError, match="needs teachers"):
        TrainConfig(distill_weight=0.5, distill_views="augmented")
    with pytest.raises(ValueError, match="ferplus_soft needs distill_views='image'"):
        TrainConfig(teachers=[str(teacher)], distill_weight=0.5, ferplus_soft=0.2, distill_views="augmented")
    with pytest.raises(ValueError, match="'image' or 'augmented'"):
        TrainConfig(teachers=[str(teacher)], distill_weight=0.5, distill_views="both")

    ds = load_dataset(str(fer_npz), "fer7", None, "majority", 128)
    labels = ds.label_set.labels
    prep = Preprocessing.for_input_shape((48, 48, 1))
    fn = teacher_on_views([teacher], labels, prep, temperature=2.0)
    model = keras.saving.load_model(str(teacher), compile=False)
    x = prep.tf_batch(ds["val"].x[:16]).numpy()
    np.testing.assert_allclose(fn(x).numpy(), _soften(np.asarray(model(x)), 2.0), atol=1e-5)

    onehot = np.eye(7, dtype=np.float32)[ds["train"].y]
    batches = make_dataset(ds["train"].x, onehot, prep, 64, True, 0, make_augmenter(0), teacher=fn, distill_weight=0.4)
    xb, yb = (t.numpy() for t in next(iter(batches)))
    p_view = _soften(np.asarray(model(xb)), 2.0)
    label_part = (yb - 0.4 * p_view) / 0.6
    np.testing.assert_allclose(label_part.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(label_part.max(axis=1), 1.0, atol=1e-4)  # what is left is a one-hot label
    # the views are augmented, so the teacher was not asked about the original images: no training image's
    # un-augmented input gives the batch's first image
    orig = prep.tf_batch(ds["train"].x).numpy()
    assert np.abs(orig - xb[:1]).reshape(len(orig), -1).max(axis=1).min() > 1.0

    odd = tmp_path / "odd"
    odd.mkdir()
    shutil.copy(teacher, odd / "model.keras")
    meta = json.loads(Path(f"{teacher}.json").read_text())
    (odd / "model.keras.json").write_text(json.dumps({**meta, "input_size": [64, 64]}))
    with pytest.raises(ValueError, match="takes another input"):
        teacher_on_views([odd / "model.keras"], labels, prep)

    out = tmp_path / "kd_views"
    cfg = TrainConfig(model="edge_cnn", data=str(fer_npz), out=str(out), epochs=1, batch_size=64, limit=256,
                      init_from=str(teacher), teachers=[str(teacher)], distill_weight=0.5, distill_temperature=2.0,
                      distill_views="augmented", mixed_precision="off", report=False)
    train(cfg)
    summary = json.loads((out / "soft_targets.json").read_text())
    assert summary["views"] == "augmented" and 0 < summary["val_accuracy"] <= 1
    assert not (out / "soft_targets_train.npz").exists()  # nothing precomputed for the training images
    line = _soft_target_lines(json.loads((out / "config.json").read_text()), out / "soft_targets.json")[0]
    assert "every augmented training batch" in line and "flip-averaged predictions of" not in line


def test_teacher_classes_are_matched_by_name(tiny_run, fer_test):
    from edge_emotion.metadata import read_metadata
    from edge_emotion.train.soft_targets import teacher_distribution

    teacher = tiny_run / "model.keras"
    labels = list(read_metadata(teacher).labels)
    x = fer_test[0][:64]
    p = teacher_distribution([teacher], x, labels, progress=False)
    rev = teacher_distribution([teacher], x, labels[::-1], progress=False)
    np.testing.assert_allclose(rev, p[:, ::-1], atol=1e-6)
    # a subset of the teacher's classes: their probabilities, renormalised
    sub = teacher_distribution([teacher], x, labels[:3], progress=False)
    np.testing.assert_allclose(sub, p[:, :3] / p[:, :3].sum(axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(ValueError, match="has no contempt"):
        teacher_distribution([teacher], x, [*labels, "contempt"], progress=False)


def test_flip_averaged_export_is_one_mirror_symmetric_int8_artifact(default_keras, tmp_path, fer_npz, fer_test):
    """--flip-average: the int8 TFLite averages each face with its mirror image in one call; it stores the
    weights once, says so in its metadata, gives a face and its mirror image the same probabilities, and
    matches the Keras model with the same averaging. The model is the bundled default's Keras source: a model
    with real margins, so the int8 export is held to the same agreement gate as any other."""
    import keras

    from edge_emotion.export import export_model
    from edge_emotion.metadata import read_metadata
    from edge_emotion.runtime.classifier import EmotionClassifier
    from edge_emotion.train.models import flip_averaged

    src = keras.saving.load_model(default_keras, safe_mode=True)
    wrapped = flip_averaged(src)
    x = fer_test[0][:8, :, :, None].astype(np.float32)
    want = (np.asarray(src(x)) + np.asarray(src(x[:, :, ::-1]))) / 2
    np.testing.assert_allclose(np.asarray(wrapped(x)), want, atol=1e-5)
    assert wrapped.count_params() == src.count_params()

    for d in ("plain", "flip"):
        (tmp_path / d).mkdir()
    plain = export_model(default_keras, "tflite", "int8", out=tmp_path / "plain", data=fer_npz, n_calib=64,
                         n_validate=0, show_progress=False)
    res = export_model(default_keras, "tflite", "int8", out=tmp_path / "flip", data=fer_npz,
                       n_validate=500, show_progress=False, flip_average=True)
    assert res.validation.passed and res.validation.n == 500 and res.validation.agreement >= 0.98
    assert res.size_bytes < 1.15 * plain.size_bytes  # one copy of the weights
    assert read_metadata(res.path).extra["flip_average"] is True
    clf = EmotionClassifier(res.path)
    faces = fer_test[0][:32, :, :, None]
    p = clf.predict(clf.preprocessing.batch(faces, order="rgb"))
    p_mirror = clf.predict(clf.preprocessing.batch(np.ascontiguousarray(faces[:, :, ::-1]), order="rgb"))
    np.testing.assert_allclose(p, p_mirror, atol=1e-6)
    single = EmotionClassifier(plain.path)
    q = single.predict(single.preprocessing.batch(faces, order="rgb"))
    q_mirror = single.predict(single.preprocessing.batch(np.ascontiguousarray(faces[:, :, ::-1]), order="rgb"))
    assert np.abs(q - q_mirror).max() > 1e-3  # the single-pass model is not symmetric by itself

    onnx = export_model(default_keras, "onnx", "fp32", out=tmp_path / "flip", data=fer_npz,
                        n_validate=200, show_progress=False, flip_average=True)
    assert onnx.validation.passed and onnx.validation.agreement == 1.0


def test_ingredients_table_scores_each_step_once_and_shows_the_gains(tiny_run, tmp_path, fer_npz, monkeypatch):
    """`python -m edge_emotion.train.ingredients`: each model is evaluated once (its flip step reuses the
    evaluation), the rows keep the recipe's order, and the model card shows each step's gain."""
    from edge_emotion import evaluate
    from edge_emotion.export.bundle import _ingredient_lines
    from edge_emotion.train import ingredients

    with pytest.raises(ValueError, match="NAME=MODEL"):
        ingredients.parse_step("no-model-here")
    assert ingredients.parse_step(" + flip =a/b.keras:flip") == ("+ flip", Path("a/b.keras"), True)
    assert ingredients.parse_step("start=a/b.keras") == ("start", Path("a/b.keras"), False)
    calls = []
    real = evaluate.evaluate_file
    monkeypatch.setattr(evaluate, "evaluate_file", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    model = tiny_run / "model.keras"
    out = tmp_path / "ingredients.json"
    assert ingredients.main(["-o", str(out), "--data", str(fer_npz), "--limit", "200",
                             f"start={model}", f"+ flip={model}:flip", "--tried", f"one pass only={model}"]) == 0
    rows = json.loads(out.read_text())
    assert calls == [model]
    assert [r["step"] for r in rows] == ["start", "+ flip", "one pass only"]
    assert [r["flip_average"] for r in rows] == [False, True, False] and [r["kept"] for r in rows] == [True, True, False]
    assert all(r["n"] == 200 and 0 < r["val_accuracy"] < 1 for r in rows)
    want = real(model, fer_npz, "val", tta=True, limit=200)
    assert rows[0]["val_accuracy"] == pytest.approx(want.accuracy) and rows[1]["val_accuracy"] == pytest.approx(want.tta_accuracy)
    # a bundled flip-averaged model's Keras source runs averaged: asking for its one pass is an error, not the
    # flip figure under a one-pass name
    published = tmp_path / "published.keras"
    published.write_bytes(model.read_bytes())
    Path(f"{published}.json").write_bytes(Path(f"{model}.json").read_bytes())
    monkeypatch.setattr("edge_emotion.runtime.zoo.published_with_flip_average", lambda p: Path(p) == published)
    with pytest.raises(ValueError, match="published flip-averaged.*give the run's model.keras"):
        ingredients.measure_steps([("one pass", published, False)], fer_npz, limit=50)
    assert ingredients.measure_steps([("flip", published, True)], fer_npz, limit=50)[0]["flip_average"] is True
    lines = _ingredient_lines(out)
    assert "200 images" in lines[1]
    flip_line = next(i for i, ln in enumerate(lines) if ln.startswith("| + flip |"))
    assert f"{rows[1]['val_accuracy'] - rows[0]['val_accuracy']:+.2%}" in lines[flip_line]
    # the ingredient not kept comes after the recipe; its gain reads against the recipe's last step of its own form
    # (a one-pass figure against the one-pass start, not against the flip-averaged figure)
    assert "not kept" in lines[flip_line + 2] and lines[-1].startswith("| one pass only |")
    assert lines[-1].endswith(f"| {rows[2]['val_accuracy'] - rows[0]['val_accuracy']:+.2%} |")
