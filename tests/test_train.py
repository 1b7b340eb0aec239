"""Training: loaders, the model zoo, a tiny real end-to-end run with its full report, resume."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPORT_FILES = ["model.keras", "model.keras.json", "metadata.json", "history.csv", "curves.png", "confusion_test.png",
                "confusion_val.png", "examples_test.png", "class_distribution.png", "samples.png", "report.json", "report.md"]


def test_tiny_run_produces_every_report_artifact(tiny_run, fer_npz):
    for f in REPORT_FILES:
        assert (tiny_run / f).exists(), f
    meta = json.loads((tiny_run / "metadata.json").read_text())
    assert meta["labels"][3] == "happy" and meta["input_size"] == [48, 48]
    assert len(meta["data_sha256"]) == 64 and meta["extra"]["epochs_run"] == 2
    assert "git_revision" in meta["extra"] and meta["extra"]["train_wall_seconds"] > 0
    rep = json.loads((tiny_run / "report.json").read_text())
    t = rep["test"]
    conf = np.array(t["confusion"])
    assert t["n"] == 384 and conf.sum() == 384 and conf.shape == (7, 7)
    # the figures are the confusion matrix's, not numbers that merely look like accuracies
    assert t["accuracy"] == pytest.approx(np.trace(conf) / 384)
    assert set(t["per_class"]) == set(meta["labels"])
    for k, lab in enumerate(meta["labels"]):
        assert t["per_class"][lab]["support"] == conf[k].sum()
        if conf[k].sum():
            assert t["per_class"][lab]["recall"] == pytest.approx(conf[k, k] / conf[k].sum())
    per_class_auc = [t["roc_auc"][lab] for lab in meta["labels"] if lab in t["roc_auc"]]
    assert per_class_auc and t["roc_auc"]["macro"] == pytest.approx(np.mean(per_class_auc))
    # flip-TTA re-computed from the saved model: mean of the image's and its mirror's probabilities
    import keras

    from edge_emotion.datasets import load_dataset
    from edge_emotion.preprocessing import Preprocessing

    test = load_dataset(str(fer_npz), "fer7", None, "majority", 384)["test"]
    model = keras.saving.load_model(tiny_run / "model.keras", safe_mode=True)
    x = np.asarray(Preprocessing((48, 48), "gray").tf_batch(test.x))
    p = np.asarray(model.predict(x, verbose=0)) + np.asarray(model.predict(x[:, :, ::-1], verbose=0))
    assert t["tta_accuracy"] == pytest.approx(float((p.argmax(1) == test.hard_labels).mean()), abs=1.5 / 384)
    with open(tiny_run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(r["epoch_seconds"]) > 0 for r in rows)
    assert meta["extra"]["train_wall_seconds"] == pytest.approx(sum(float(r["epoch_seconds"]) for r in rows))
    # --average-last 2: both epochs were kept, their average scored on val against the best epoch
    assert sorted(p.name for p in (tiny_run / "epochs").glob("*.npz")) == ["epoch_001.npz", "epoch_002.npz"]
    avg = meta["extra"]["final_weights"]
    assert avg["scored_in"] == "float32"  # what the card reads to tell these figures from an older bf16 finalisation's
    assert {c["name"] for c in avg["candidates"]} == {"best epoch + BN refresh", "average of epochs 1-2",
                                                      "average of epochs 1-2 + BN refresh"}
    # each candidate was scored on the 384 val images: a whole number of correct answers each
    assert all(c["val_accuracy"] * 384 == pytest.approx(round(c["val_accuracy"] * 384), abs=1e-6) for c in avg["candidates"])
    chosen = avg["chosen"]
    assert chosen is None or chosen["val_accuracy"] > avg["best_single_epoch_val_accuracy"]
    # the saved model is the winner: it scores on val exactly what the metadata (and the card) say
    import keras

    from edge_emotion.train.averaging import val_accuracy
    from edge_emotion.datasets import load_dataset

    val = load_dataset(str(fer_npz), "fer7", None, "majority", 384)["val"]
    got = val_accuracy(keras.saving.load_model(tiny_run / "model.keras", safe_mode=True), val.x, val.hard_labels)
    assert got == pytest.approx(chosen["val_accuracy"] if chosen else avg["best_single_epoch_val_accuracy"], abs=1e-6)


def test_shipped_keras_file_has_no_optimizer_state(tiny_run):
    """model.keras is what ships: float32 weights only, not Adam's two extra copies of every weight."""
    import io
    import zipfile

    import h5py

    from edge_emotion.metadata import read_metadata

    for name, has_optimizer in (("model.keras", False), ("best.keras", True)):
        with zipfile.ZipFile(tiny_run / name) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h:
            assert ("optimizer" in h) is has_optimizer, name
    # both carry their metadata, so the best epoch can be scored on its own (ingredients' first row)
    shipped, best = read_metadata(tiny_run / "model.keras"), read_metadata(tiny_run / "best.keras")
    assert best.labels == shipped.labels and best.input_size == shipped.input_size
    assert "checkpoint" in best.extra and "checkpoint" not in shipped.extra


def test_a_resumed_run_keeps_its_history_columns(tmp_path):
    """Epoch times are logged by new runs; a run resumed from an older log keeps that log's columns
    (a new column under an old header would shift every value after it)."""
    from edge_emotion.train.history import epoch_seconds, logs_epoch_seconds

    new, old = tmp_path / "new.csv", tmp_path / "old.csv"
    assert logs_epoch_seconds(new)
    old.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.5,1.3\n")
    assert not logs_epoch_seconds(old) and epoch_seconds(old) is None
    new.write_text("epoch,accuracy,epoch_seconds,loss,val_accuracy,val_loss\n0,0.5,30.5,1.2,0.5,1.3\n1,0.6,29.5,1.1,0.6,1.2\n")
    assert logs_epoch_seconds(new) and epoch_seconds(new) == 60.0


def test_weight_averaging_means_and_batchnorm_refresh(tmp_path):
    import keras

    from edge_emotion.train.averaging import average_snapshots, refresh_batchnorm, save_snapshot, set_variables, snapshot_files

    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, keras.layers.BatchNormalization(momentum=0.99)(keras.layers.Rescaling(1.0)(inp)))
    for i, value in enumerate([1.0, 3.0, 8.0]):
        set_variables(model, [np.full(v.shape, value, np.float32) for v in model.weights])
        save_snapshot(model, tmp_path / "epochs" / f"epoch_{i + 1:03d}.npz")
    files = snapshot_files(tmp_path)
    assert [f.name for f in files] == ["epoch_001.npz", "epoch_002.npz", "epoch_003.npz"]
    assert all(np.allclose(a, 5.5) for a in average_snapshots(files[1:]))
    with pytest.raises(ValueError, match="do not match"):
        set_variables(model, [np.zeros(3, np.float32)] * len(model.weights))

    # moving statistics become the plain mean/variance over all images, not an EMA of the last batches
    images = np.random.default_rng(0).integers(0, 256, (64, 4, 4, 1)).astype(np.uint8)
    refresh_batchnorm(model, images, batch=16)
    bn = model.layers[-1]
    assert np.allclose(bn.moving_mean.numpy(), images.mean(), rtol=1e-4)
    assert bn.momentum == 0.99


def test_resume_continues_from_the_saved_epoch(tiny_run, tmp_path, fer_npz):
    import shutil

    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train

    run = tmp_path / "resumed"
    shutil.copytree(tiny_run, run)
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    cfg.out, cfg.epochs, cfg.report = str(run), 3, False
    train(cfg)
    with open(run / "history.csv") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == [0, 1, 2]  # epochs 0 and 1 were not trained again


@pytest.mark.parametrize("name", ["edge_cnn", "cnn", "alexnet48", "alexnet", "resnet50", "densenet121"])
def test_every_model_builds_and_runs_at_its_input_size(name):
    from edge_emotion.train.models import MODELS, build_model

    spec = MODELS[name]
    m = build_model(name, 7)
    x = np.random.default_rng(0).uniform(0, 255, (2, *spec.input_shape)).astype("float32")
    y = np.asarray(m(x, training=False))
    assert y.shape == (2, 7)
    np.testing.assert_allclose(y.sum(1), 1, rtol=1e-4)


@pytest.mark.parametrize("options", [{}, {"bn_before_relu": True, "relu6": True}], ids=["seeds_layout", "int8_layout"])
def test_alexnet48_trains_stably_at_its_default_rate(fer_npz, options):
    """Eight Adam steps on real faces at the registered rate: the loss never blows up and falls below chance.
    Without BatchNorm after its Dense layers (``dense_bn=False``) the loss jumps to 5-11 here."""
    import keras

    from edge_emotion.train.models import MODELS, build_model

    with np.load(fer_npz) as d:
        x, y = d["x_train"][:64].astype("float32").reshape(64, 48, 48, 1), d["y_train"][:64]
    keras.utils.set_random_seed(0)
    m = build_model("alexnet48", 7, **options)
    m.compile(keras.optimizers.Adam(MODELS["alexnet48"].learning_rate), "sparse_categorical_crossentropy")
    losses = [float(m.train_on_batch(x[i % 2 * 32:][:32], y[i % 2 * 32:][:32])) for i in range(8)]
    assert max(losses) < 2 * np.log(7), losses
    assert losses[-1] < np.log(7), losses


def test_alexnet48_int8_layout_puts_batchnorm_between_each_layer_and_a_capped_relu():
    """``bn_before_relu`` + ``relu6``: every BatchNorm directly follows a Conv2D or Dense without bias (so it folds
    into that layer on export) and feeds a ReLU capped at 6; the seeds' layout has BatchNorm after each ReLU."""
    from keras import layers

    from edge_emotion.train.models import build_model

    def bn_neighbours(m):
        return [(l._inbound_nodes[0].parent_nodes[0].operation, l._outbound_nodes[0].operation)
                for l in m.layers if isinstance(l, layers.BatchNormalization)]

    int8 = build_model("alexnet48", 7, bn_before_relu=True, relu6=True)
    pairs = bn_neighbours(int8)
    assert len(pairs) == 7  # five convolutions, two Dense layers
    for before, after in pairs:
        assert isinstance(before, (layers.Conv2D, layers.Dense)) and not before.use_bias
        assert isinstance(after, layers.ReLU) and after.max_value == 6.0
    seeds = build_model("alexnet48", 7)
    assert any(isinstance(before, layers.Conv2D) and before.activation.__name__ == "relu" for before, _ in bn_neighbours(seeds))


def test_model_options_from_the_command_line_reach_the_builder_or_are_refused_by_name():
    from keras import layers

    from edge_emotion.train.cli import build_parser, config_from_args
    from edge_emotion.train.models import build_model

    args = build_parser().parse_args(["--model", "alexnet48", "--model-arg", "relu6=true", "--model-arg", "bn_before_relu=true"])
    assert config_from_args(args).model_kwargs == {"relu6": True, "bn_before_relu": True}
    args = build_parser().parse_args(["--model", "edge_cnn", "--model-arg", "width=40"])
    assert config_from_args(args).model_kwargs == {"width": 40}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        config_from_args(build_parser().parse_args(["--model-arg", "relu6"]))
    with pytest.raises(ValueError, match=r"no option 'depth'.*convs, dropout, width"):
        build_model("edge_cnn", 7, depth=3)
    # convs: 3x3 convolutions per stage, from JSON on the command line; the default is the shipped (2, 2, 2, 2)
    args = build_parser().parse_args(["--model", "edge_cnn", "--model-arg", "convs=[2,3,3,2]"])
    assert config_from_args(args).model_kwargs == {"convs": [2, 3, 3, 2]}

    def n_convs(m):
        return sum(isinstance(layer, layers.Conv2D) for layer in m.layers)

    assert n_convs(build_model("edge_cnn", 7, width=8)) == 8
    assert n_convs(build_model("edge_cnn", 7, width=8, convs=[2, 3, 3, 2])) == 10
    with pytest.raises(ValueError, match="four positive counts"):
        build_model("edge_cnn", 7, convs=[2, 2, 2])


def test_classic_alexnet_trains_stably_at_its_default_rate(fer_npz):
    """The seeds' 227x227x3 AlexNet gets the same check on real faces (resized, grey to RGB): eight Adam steps at
    the registered rate, the loss stays bounded and falls below chance. With its plain Dense layers
    (``dense_bn=False``) the same steps gave losses of 4-8."""
    import keras

    from edge_emotion.train.models import MODELS, build_model

    with np.load(fer_npz) as d:
        faces, y = d["x_train"][:32], d["y_train"][:32]
    x = np.stack([cv2.cvtColor(cv2.resize(f, (227, 227)), cv2.COLOR_GRAY2RGB) for f in faces]).astype("float32")
    keras.utils.set_random_seed(0)
    m = build_model("alexnet", 7)
    assert m.input_shape[1:] == (227, 227, 3)
    m.compile(keras.optimizers.Adam(MODELS["alexnet"].learning_rate), "sparse_categorical_crossentropy")
    losses = [float(m.train_on_batch(x[i % 2 * 16:][:16], y[i % 2 * 16:][:16])) for i in range(8)]
    assert max(losses) < 2 * np.log(7), losses
    assert losses[-1] < np.log(7), losses


def test_model_names_for_help_match_the_registry():
    from edge_emotion.train import MODEL_NAMES
    from edge_emotion.train.models import MODELS

    assert sorted(MODEL_NAMES) == sorted(MODELS)


def test_seed_cnn_is_the_seed_architecture():
    from keras import layers

    from edge_emotion.train.models import build_model

    m = build_model("cnn", 7)
    convs = [l.filters for l in m.layers if isinstance(l, layers.Conv2D)]
    dense = [l.units for l in m.layers if isinstance(l, layers.Dense)]
    assert convs == [32, 64, 128, 256] and dense == [256, 128, 7]
    assert sum(isinstance(l, layers.BatchNormalization) for l in m.layers) == 6
    assert sum(isinstance(l, layers.Dropout) for l in m.layers) == 2


def test_kaggle_csv_loader(tmp_path, fer_test):
    from edge_emotion.datasets import load_dataset

    x, y = fer_test
    p = tmp_path / "fer2013.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for i in range(30):
            w.writerow([int(y[i]), " ".join(map(str, x[i].ravel())), ["Training", "PublicTest", "PrivateTest"][i % 3]])
    ds = load_dataset(p)
    assert sorted(ds.splits) == ["test", "train", "val"]
    assert ds["train"].x.shape == (10, 48, 48, 1)
    np.testing.assert_array_equal(ds["train"].x[0, ..., 0], x[0])
    assert ds["val"].y.tolist() == [int(v) for v in y[1:30:3]]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="expected CSV columns"):
        load_dataset(bad)


def test_image_folder_loader(tmp_path, fer_test):
    from edge_emotion.datasets import load_dataset

    x, y = fer_test
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for i in range(60):
        part, prefix = ("train", "Training") if i < 40 else ("test", "PublicTest" if i < 50 else "PrivateTest")
        d = tmp_path / part / names[y[i]]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{prefix}_{i}.png"), x[i])
    ds = load_dataset(tmp_path)
    assert len(ds["train"]) == 40 and len(ds["val"]) == 10 and len(ds["test"]) == 10
    assert ds["train"].x.shape[1:] == (48, 48, 1)
    (tmp_path / "train" / "bored").mkdir()
    with pytest.raises(ValueError, match="not a label of fer7"):
        load_dataset(tmp_path)


def test_ferplus_majority_and_soft(fer_npz, ferplus_npz):
    from edge_emotion.datasets import load_ferplus

    maj = load_ferplus(fer_npz, ferplus_npz, "majority")
    soft = load_ferplus(fer_npz, ferplus_npz, "soft")
    assert maj.label_set.num_classes == 8 and maj.label_set.labels[7] == "contempt"
    assert len(maj["test"]) < len(soft["test"]) <= 3589
    np.testing.assert_allclose(soft["train"].y.sum(1), 1, rtol=1e-5)
    assert maj["train"].y.max() <= 7


def test_emotic_csv_multilabel(tmp_path, astronaut):
    from edge_emotion.datasets import load_emotic_csv

    (tmp_path / "imgs" / "mscoco").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "imgs" / "mscoco" / "a.jpg"), astronaut)
    p = tmp_path / "annot_train.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Folder", "Filename", "BBox", "Categorical_Labels"])
        w.writerow(["mscoco", "a.jpg", "[150, 50, 300, 300]", "['Happiness', 'Confidence']"])
        w.writerow(["mscoco", "a.jpg", "[0, 0, 512, 512]", "['Engagement']"])
    ds = load_emotic_csv(p, tmp_path / "imgs")
    s = ds["train"]
    assert ds.label_set.multi_label and ds.label_set.num_classes == 26
    assert s.x.shape == (2, 96, 96, 3) and s.y.shape == (2, 26)
    labels = ds.label_set.labels
    assert s.y[0, labels.index("Happiness")] == 1 and s.y[0, labels.index("Confidence")] == 1 and s.y[0].sum() == 2


def test_multilabel_report_has_cooccurrence_and_ap(tmp_path):
    from edge_emotion.train.report import _multilabel_report

    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(40, 5)) > 0.6).astype(np.float32)
    probs = np.clip(y * 0.7 + rng.uniform(0, 0.3, y.shape), 0, 1)
    r = _multilabel_report(probs, y, list("abcde"), tmp_path, "val")
    assert (tmp_path / "cooccurrence_val.png").exists()
    assert r["mAP"] > 0.8 and len(r["cooccurrence"]) == 5


def test_class_weights_and_oversampling():
    from edge_emotion.train.pipeline import class_weights, oversample_indices

    counts = np.array([100, 10, 50])
    w = class_weights(counts, "weights")
    assert w[1] > w[2] > w[0]
    assert sum(w[i] * counts[i] for i in range(3)) == pytest.approx(counts.sum())
    assert class_weights(counts, "none") is None
    labels = np.repeat([0, 1, 2], counts)
    idx = oversample_indices(labels, np.random.default_rng(0))
    assert np.bincount(labels[idx]).min() >= 50


def test_weight_averaging_phase_continues_a_trained_model(tiny_run, tmp_path, fer_npz):
    """--init-from a model of the same classes + --lr-schedule constant + --average-last: the SWA phase
    that produced the shipped default. The run continues the given weights, snapshots every epoch,
    and its metadata and card name the model it started from by SHA-256 and training history."""
    import keras

    from edge_emotion.export.bundle import _start_lines
    from edge_emotion.metadata import sha256_file
    from edge_emotion.train.averaging import snapshot_files
    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train
    from edge_emotion.train.pipeline import schedule

    assert schedule(3e-4, 10, 5, 1, "constant") == 3e-4
    cosine = schedule(3e-4, 10, 5, 1, "cosine")
    assert float(cosine(10)) == pytest.approx(3e-4) and float(cosine(50)) < 1e-5  # peak after warm-up, then decays
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        schedule(3e-4, 10, 5, 1, "step")

    out = tmp_path / "swa"
    cfg = TrainConfig(model="edge_cnn", data=str(fer_npz), out=str(out), epochs=2, batch_size=64, limit=256,
                      init_from=str(tiny_run / "model.keras"), learning_rate=3e-4, lr_schedule="constant",
                      average_last=2, mixed_precision="off", report=False)
    train(cfg)
    assert [p.name for p in snapshot_files(out)] == ["epoch_001.npz", "epoch_002.npz"]
    meta = json.loads((out / "metadata.json").read_text())
    init = meta["extra"]["init_from"]
    assert init["sha256"] == sha256_file(tiny_run / "model.keras")
    assert init["epochs_run"] == 2 and init["model_name"] == "edge_cnn" and init["train_wall_seconds"] > 0
    src = keras.saving.load_model(tiny_run / "model.keras", safe_mode=True)
    got = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert got.count_params() == src.count_params()  # the same model (width 8), not a fresh default-width one
    w_src, w_got = src.get_layer("s1c1").get_weights()[0], got.get_layer("s1c1").get_weights()[0]
    assert np.corrcoef(w_src.ravel(), w_got.ravel())[0, 1] > 0.9  # continued at a low rate, not restarted
    avg = meta["extra"]["final_weights"]  # the starting point competes with the averages on val, scored the same way
    from edge_emotion.train.averaging import val_accuracy
    from edge_emotion.datasets import load_dataset

    val = load_dataset(str(fer_npz), "fer7", None, "majority", 256)["val"]
    assert avg["starting_model_val_accuracy"] == pytest.approx(val_accuracy(src, val.x, val.hard_labels), abs=1e-6)
    assert avg["chosen"] is None or avg["chosen"]["val_accuracy"] > avg["starting_model_val_accuracy"]
    line = _start_lines(meta["extra"]["config"], meta["extra"])[0]
    assert "weight-averaging phase" in line and init["sha256"][:16] in line


def test_cli_finalize_rewrites_the_model_from_the_best_checkpoint(tiny_run, tmp_path):
    """`edge-emotion train --finalize RUN` (e.g. on a run stopped early) re-selects the final weights on val."""
    import shutil

    from edge_emotion.cli import main

    run = tmp_path / "stopped"
    shutil.copytree(tiny_run, run)
    (run / "model.keras").unlink()
    assert main(["train", "--finalize", str(run), "--no-report"]) == 0
    assert (run / "model.keras").is_file()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["extra"]["final_weights"]["candidates"][0]["name"] == "best epoch + BN refresh"
    # the training time and the revision that trained it survive a second finalisation
    trained = json.loads((tiny_run / "metadata.json").read_text())["extra"]
    assert meta["extra"]["train_wall_seconds"] == trained["train_wall_seconds"]
    assert meta["extra"]["git_revision"] == trained["git_revision"] and "finalized_at_git_revision" in meta["extra"]


def test_two_stage_transfer_to_ferplus8(tiny_run, tmp_path, fer_npz):
    import keras

    from edge_emotion.metadata import read_metadata
    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train

    out = tmp_path / "ferplus"
    cfg = TrainConfig(model="edge_cnn", data=str(fer_npz), label_set="ferplus8", out=str(out), epochs=1, head_epochs=1,
                      batch_size=64, limit=256, init_from=str(tiny_run / "model.keras"), mixed_precision="off", report=False)
    train(cfg)
    with open(out / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 2  # one epoch with a frozen body, one fine-tuning
    m = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert m.output_shape[-1] == 8
    src = keras.saving.load_model(tiny_run / "model.keras", safe_mode=True)
    first_conv = [l for l in m.layers if l.name == "s1c1"][0].get_weights()[0]
    # fine-tuned from the FER-2013 model, not from scratch: the first conv is close to the source's
    assert np.corrcoef(first_conv.ravel(), [l for l in src.layers if l.name == "s1c1"][0].get_weights()[0].ravel())[0, 1] > 0.5
    meta = read_metadata(out / "model.keras")
    assert meta.label_set == "ferplus8" and meta.labels[-1] == "contempt"


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """A local no-top ResNet50 weights file in the legacy HDF5 layout keras.applications caches.

    ImageNet weights cannot be downloaded here; these are seeded random weights saved the
    way keras.applications' own ``*_notop.h5`` files are, which is what the loader must read.
    """
    import keras
    from keras.applications import resnet
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(7)
    base = resnet.ResNet50(include_top=False, weights=None, input_shape=(96, 96, 3), pooling="avg")
    path = tmp_path_factory.mktemp("weights") / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    import h5py

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, base)
    return path, base.get_layer("conv1_conv").get_weights()[0]


def test_backbone_two_stage_from_a_local_weights_file(resnet_weights, tmp_path, fer_npz):
    import keras

    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train

    path, conv1 = resnet_weights
    out = tmp_path / "resnet"
    cfg = TrainConfig(model="resnet50", data=str(fer_npz), out=str(out), epochs=1, head_epochs=1, batch_size=16,
                      limit=32, backbone_weights=str(path), mixed_precision="off", report=False)
    train(cfg)
    with open(out / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 2  # stage 1 (frozen backbone, new head), stage 2 (fine-tune)
    m = keras.saving.load_model(out / "model.keras", safe_mode=True)
    got = m.get_layer("backbone").get_layer("conv1_conv").get_weights()[0]
    # started from the file's weights, then fine-tuned at a tenth of the rate: still close to them
    assert np.corrcoef(got.ravel(), conv1.ravel())[0, 1] > 0.9
    assert m.output_shape[-1] == 7


def test_backbone_weights_errors_say_what_to_do(resnet_weights, tmp_path):
    from edge_emotion.train.models import build_model

    with pytest.raises(FileNotFoundError, match="Nothing is downloaded"):
        build_model("resnet50", 7, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="does not fit the densenet121 backbone"):
        build_model("densenet121", 7, weights=str(resnet_weights[0]))


def test_random_erasing_and_weight_decay_options():
    import keras

    from edge_emotion.train.pipeline import make_augmenter, make_optimizer

    x = np.full((64, 48, 48, 1), 128.0, np.float32)
    y = np.asarray(make_augmenter(3, random_erasing=1.0).layers[-1](x, training=True))
    erased = (np.abs(y - x) > 0).reshape(64, -1).mean(1)
    assert (erased > 0).mean() > 0.5 and erased.max() <= 0.25  # patches of 2-20 % of the image
    assert not any(isinstance(l, keras.layers.RandomErasing) for l in make_augmenter(3).layers)
    with pytest.raises(ValueError, match="probability"):
        make_augmenter(3, random_erasing=1.5)

    assert type(make_optimizer(1e-3, 0.0)).__name__ == "Adam"
    opt = make_optimizer(1e-3, 0.02)
    assert type(opt).__name__ == "AdamW"
    bn, kernel = keras.Variable(np.ones(4), name="gamma"), keras.Variable(np.ones(4), name="kernel")
    assert not opt._use_weight_decay(bn) and opt._use_weight_decay(kernel)
    sgd = make_optimizer(1e-2, 0.0005, "sgd")
    assert type(sgd).__name__ == "SGD" and sgd.nesterov and sgd.momentum == 0.9
    assert not sgd._use_weight_decay(bn) and sgd._use_weight_decay(kernel)
    assert make_optimizer(1e-2, 0.0, "sgd").weight_decay is None
    with pytest.raises(ValueError, match="optimizer is one of adam, sgd"):
        make_optimizer(1e-3, 0.0, "rmsprop")


def test_sgd_trains_from_the_command_line_and_the_card_names_it(tiny_run, tmp_path, fer_npz):
    """--optimizer sgd: SGD with Nesterov momentum trains a real slice, its checkpoint holds that optimizer, and the
    model card says so. Without --lr it is refused: the registered rates are Adam's."""
    import keras

    from edge_emotion.export.bundle import _optimizer_name
    from edge_emotion.train.cli import main
    from edge_emotion.train.config import TrainConfig

    out = tmp_path / "sgd"
    assert main(["--model", "edge_cnn", "--data", str(fer_npz), "--limit", "256", "--epochs", "2", "--batch-size", "64",
                 "--init-from", str(tiny_run / "model.keras"), "--optimizer", "sgd", "--lr", "0.01",
                 "--weight-decay", "0.0005", "--mixed-precision", "off", "--no-report", "--out", str(out)]) == 0
    with open(out / "history.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 2 and all(np.isfinite(losses)) and max(losses) < 5
    opt = keras.saving.load_model(out / "best.keras", safe_mode=True).optimizer
    assert type(opt).__name__ == "SGD" and opt.nesterov and opt.momentum == 0.9
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["optimizer"] == "sgd"
    assert _optimizer_name(cfg) == "SGD with Nesterov momentum 0.9 (weight decay 0.0005 on kernels)"
    assert _optimizer_name({"weight_decay": 0.05}) == "AdamW (weight decay 0.05 on kernels)"  # runs before the field
    assert _optimizer_name({}) == "Adam"
    with pytest.raises(ValueError, match="needs a learning rate"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer is one of"):
        TrainConfig(optimizer="rmsprop", learning_rate=0.01)


def test_exact_copies_match_the_dataset_card(fer_npz):
    """The leakage-free figure drops exactly the test images fer2013.json lists as copies of training images."""
    from edge_emotion.datasets import exact_copies_in

    card = json.loads((fer_npz.parent / "fer2013.json").read_text())["quality_checks"]["exact_duplicates"]
    with np.load(fer_npz) as d:
        assert exact_copies_in(d["x_test"], d["x_train"]).sum() == card["test_images_with_exact_copy_in_train"]
        assert exact_copies_in(d["x_val"], d["x_train"]).sum() == card["val_images_with_exact_copy_in_train"]
        flipped = d["x_test"][:50, :, ::-1]
        assert not exact_copies_in(flipped[flipped.std(axis=(1, 2)) > 1], d["x_test"][:50]).any()


def test_a_model_built_with_options_continues_under_bf16_with_its_output_layer_in_float32(tmp_path):
    """``--init-from`` under mixed precision rebuilds the saved graph under the bf16 policy whatever options built
    it (here ``width=8``, which the registered defaults would not fit) and copies the weights in."""
    import keras

    from edge_emotion.train.models import build_model
    from edge_emotion.train.pipeline import load_init

    m = build_model("edge_cnn", 7, width=8)
    path = tmp_path / "narrow.keras"
    m.save(path)
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        loaded = load_init(str(path))
    finally:
        keras.mixed_precision.set_global_policy(before)
    convs = [l for l in loaded.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs and all(l.compute_dtype == "bfloat16" for l in convs)
    assert loaded.layers[-1].name == "predictions" and loaded.layers[-1].compute_dtype == "float32"
    for a, b in zip(m.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(m(x, training=False)), atol=0.05)


def test_a_bf16_run_ships_the_candidate_figure_it_reports(tmp_path, fer_npz):
    """A run trained in mixed bfloat16 scores its final-weight candidates as they ship (float32), so the
    chosen candidate's val accuracy in the metadata and the card is what the saved model scores."""
    import keras

    from edge_emotion.datasets import load_dataset
    from edge_emotion.train.averaging import val_accuracy
    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train

    cfg = TrainConfig(model="edge_cnn", data=str(fer_npz), out=str(tmp_path / "run"), epochs=2, batch_size=64, limit=384,
                      model_kwargs={"width": 8}, mixed_precision="bf16", average_last=2, report=False)
    train(cfg)
    meta = json.loads((tmp_path / "run" / "model.keras.json").read_text())
    fw = meta["extra"]["final_weights"]
    shipped = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    assert {layer.dtype_policy.name for layer in shipped.layers} == {"float32"}
    val = load_dataset(str(fer_npz), "fer7", None, "majority", 384)["val"]
    claimed = [c["val_accuracy"] for c in fw["candidates"] if fw["chosen"] and c["name"] == fw["chosen"]["name"]]
    got = val_accuracy(shipped, val.x, val.hard_labels)
    assert got == pytest.approx(claimed[0] if claimed else fw["best_single_epoch_val_accuracy"], abs=1e-6)
    # the bf16 training checkpoint, evaluated as a user would, is computed in float32 as finalize scored it and as
    # its exports run (in bfloat16 its probabilities move: here by ~6e-5, on the deep run's checkpoint enough to flip
    # labels, 67.07 % against 67.18 % on PublicTest)
    from edge_emotion.evaluate import evaluate_file, predict_file
    from edge_emotion.predict import keras_predictor, predict_images
    from edge_emotion.train.models import as_float32, float32_copy

    assert as_float32(shipped) is shipped  # a float32 model is run as loaded, not rebuilt
    ckpt = tmp_path / "run" / "best.keras"
    best = evaluate_file(ckpt, fer_npz, "val", limit=384)
    assert best.accuracy == pytest.approx(fw["best_single_epoch_val_accuracy"], abs=1e-6)
    f32 = predict_images(keras_predictor(float32_copy(keras.saving.load_model(ckpt, safe_mode=True))), val.x[:64])
    np.testing.assert_allclose(predict_file(ckpt, val.x[:64])[0], f32, atol=1e-5)


def test_a_refit_trains_on_train_plus_val_and_chooses_nothing_on_val(tiny_run, tmp_path, fer_npz):
    """--refit: the recipe was chosen on val, the run trains on train + val. It must see both splits' images,
    run every planned epoch, and ship the average of its last K epochs (+ BN refresh) by rule: the val
    accuracy of what it ships is not a held-out figure, so it is never used to choose."""
    from edge_emotion.datasets import load_dataset
    from edge_emotion.train.averaging import average_snapshots, snapshot_files
    from edge_emotion.train.config import TrainConfig
    from edge_emotion.train.loop import train

    ds = load_dataset(str(fer_npz), "fer7", None, "majority", 256)
    merged = ds.with_val_in_train()
    assert len(merged["train"]) == len(ds["train"]) + len(ds["val"]) == 512
    assert np.array_equal(merged["train"].x[256:], ds["val"].x) and np.array_equal(merged["test"].y, ds["test"].y)

    out = tmp_path / "refit"
    cfg = TrainConfig(model="edge_cnn", data=str(fer_npz), out=str(out), epochs=3, batch_size=64, limit=256,
                      init_from=str(tiny_run / "model.keras"), learning_rate=3e-4, lr_schedule="constant",
                      average_last=2, patience=0, refit=True, mixed_precision="off")
    train(cfg)
    assert "## val (n=256): in the training data (a refit), not held out" in (out / "report.md").read_text()
    assert "## test (n=256)\n" in (out / "report.md").read_text()
    with open(out / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 3  # every planned epoch: no early stopping, even at patience 0
    meta = json.loads((out / "metadata.json").read_text())
    fw = meta["extra"]["final_weights"]
    assert fw["refit"] and fw["candidates"] == [] and fw["chosen"]["epochs"] == [2, 3] and fw["chosen"]["refresh_bn"]
    assert fw["chosen"]["val_accuracy"] is None  # not scored, not chosen
    import keras

    got = keras.saving.load_model(out / "model.keras", safe_mode=True)
    avg = average_snapshots(snapshot_files(out)[-2:])
    names = [v.path for v in got.weights]
    kernel = next(i for i, n in enumerate(names) if n.endswith("s1c1/kernel"))
    assert np.allclose(got.weights[kernel].numpy(), avg[kernel], atol=1e-6)  # the average, not the last epoch
    with pytest.raises(ValueError, match="refit"):
        TrainConfig(refit=True, distill_weight=0.5, ferplus_soft=1.0)
