"""Training: one command from a dataset to a run folder with the model, its metadata and a full report.

Resumable: ``keras.callbacks.BackupAndRestore`` keeps the model and optimiser state of
the last finished epoch in ``<run>/backup``; running the same command again continues
from there (the learning-rate schedule is a function of the step count, so it resumes
exactly; the best-checkpoint threshold is restored from ``history.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "train", "finalize_run", "run", "main"]


@dataclass
class TrainConfig:
    model: str = "edge_cnn"
    data: str = "../shared/data/fer2013.npz"
    label_set: str = "fer7"
    out: str = "runs/edge_cnn"
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float | None = None  # None: the model's registered rate
    warmup_epochs: int = 1
    lr_schedule: str = "cosine"  # cosine (warm-up, then cosine decay) | constant (SWA phase)
    label_smoothing: float = 0.1
    augment: bool = True
    random_erasing: float = 0.0  # probability of erasing one random patch per training image (0: off)
    weight_decay: float = 0.0  # decoupled weight decay (AdamW) on kernels; 0: plain Adam
    average_last: int = 0  # keep the last K epochs' weights; the model is their average if that wins on val
    balance: str = "none"  # none | weights | sqrt | oversample
    patience: int = 15
    seed: int = 1234
    limit: int | None = None  # use only the first N images of each split (tests, smoke runs)
    mixed_precision: str = "auto"  # auto | bf16 | off
    ferplus_mode: str = "majority"
    ferplus_votes: str | None = None
    init_from: str | None = None  # .keras model whose body starts this run (two-stage transfer)
    backbone_weights: str | None = None  # local weights file for resnet50/densenet121
    head_epochs: int = 0  # stage 1: frozen body, new head; then fine-tune the rest
    finetune_lr_factor: float = 0.1
    model_kwargs: dict = field(default_factory=dict)
    report: bool = True


# ----------------------------------------------------------------- helpers
def _git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_has_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text() or "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _best_so_far(history_csv: Path, monitor: str) -> float | None:
    if not history_csv.exists():
        return None
    with open(history_csv) as f:
        vals = [float(r[monitor]) for r in csv.DictReader(f) if r.get(monitor)]
    return max(vals) if vals else None


def _epochs_done(history_csv: Path) -> int:
    if not history_csv.exists():
        return 0
    with open(history_csv) as f:
        return sum(1 for _ in csv.DictReader(f))


def _epoch_seconds(history_csv: Path) -> float | None:
    """Total training time from the ``epoch_seconds`` column of ``history.csv`` (None if not logged)."""
    if not history_csv.exists():
        return None
    with open(history_csv) as f:
        vals = [r.get("epoch_seconds") for r in csv.DictReader(f)]
    if not vals or any(not v for v in vals):
        return None
    return float(sum(float(v) for v in vals))


def _logs_epoch_seconds(history_csv: Path) -> bool:
    """Whether this run logs epoch times: yes for a new run, and a resumed one keeps its log's columns."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return True
    with open(history_csv) as f:
        return "epoch_seconds" in f.readline().strip().split(",")


def _epoch_timer():
    """A callback that adds the epoch's wall time to its logs (``epoch_seconds`` in history.csv)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = round(time.time() - self._t0, 1)

    return EpochTimer()


def class_weights(counts: np.ndarray, mode: str) -> dict[int, float] | None:
    """Per-class loss weights: ``weights`` = inverse frequency, ``sqrt`` = its square root; mean weight 1."""
    if mode not in ("weights", "sqrt"):
        return None
    counts = np.maximum(counts.astype(np.float64), 1)
    w = counts.sum() / (len(counts) * counts)
    if mode == "sqrt":
        w = np.sqrt(w)
    w = w / (w * counts).sum() * counts.sum()
    return {i: float(v) for i, v in enumerate(w)}


def oversample_indices(labels: np.ndarray, rng: np.random.Generator, floor: float = 0.5) -> np.ndarray:
    """Indices that repeat each rare class until it has at least ``floor`` x the largest class's count."""
    counts = np.bincount(labels)
    target = int(floor * counts.max())
    parts = []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(labels == c)
        if 0 < n < target:
            idx = np.concatenate([idx, rng.choice(idx, target - n, replace=True)])
        parts.append(idx)
    return rng.permutation(np.concatenate(parts))


def make_augmenter(seed: int, random_erasing: float = 0.0):
    """On-the-fly augmentation: rotation, horizontal flip, zoom, shift, brightness, contrast.

    ``random_erasing`` > 0 adds random erasing (Zhong et al. 2017): with that probability
    a patch of 2-20 % of the image is replaced by noise, so the model cannot lean on
    one region (mouth or eyes) alone.
    """
    import keras
    from keras import layers

    if not 0.0 <= random_erasing <= 1.0:
        raise ValueError(f"random_erasing is a probability in [0, 1], got {random_erasing}")
    steps = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(12 / 360, fill_mode="reflect", seed=seed + 1),
        layers.RandomZoom((-0.12, 0.12), fill_mode="reflect", seed=seed + 2),
        layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 4),
        layers.RandomContrast(0.2, seed=seed + 5),
    ]
    if random_erasing > 0:
        steps.append(layers.RandomErasing(factor=(random_erasing, random_erasing), scale=(0.02, 0.2),
                                          value_range=(0, 255), seed=seed + 6))
    return keras.Sequential(steps, name="augment")


def make_optimizer(schedule, weight_decay: float):
    """Adam, or AdamW with decoupled decay on kernels only (BatchNorm and biases are not decayed)."""
    import keras

    if weight_decay <= 0:
        return keras.optimizers.Adam(schedule)
    opt = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def to_model_input(x, input_shape: tuple[int, int, int]):
    """tf op: resize uint8 images to the model's size and channels, as float32 0..255."""
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    h, w, c = input_shape
    if x.shape[1] != h or x.shape[2] != w:
        x = tf.image.resize(x, (h, w), method="bilinear")
    if x.shape[-1] == 1 and c == 3:
        x = tf.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 3 and c == 1:
        x = tf.image.rgb_to_grayscale(x)
    return x


def make_dataset(x: np.ndarray, y: np.ndarray, input_shape, batch_size: int, training: bool, seed: int, augmenter=None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(min(len(x), 30000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda a, b: (to_model_input(a, input_shape), b), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augmenter is not None:
        ds = ds.map(lambda a, b: (tf.clip_by_value(augmenter(a, training=True), 0.0, 255.0), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _loss_and_metrics(multi_label: bool, soft: bool, label_smoothing: float):
    import keras

    if multi_label:
        return keras.losses.BinaryCrossentropy(), [keras.metrics.BinaryAccuracy(name="accuracy"),
                                                   keras.metrics.AUC(multi_label=True, name="auc")], "val_auc"
    if soft:
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), \
            [keras.metrics.CategoricalAccuracy(name="accuracy")], "val_accuracy"
    if label_smoothing:
        # sparse targets + smoothing: Keras 3 has no sparse smoothing, so one-hot in the pipeline
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), \
            [keras.metrics.CategoricalAccuracy(name="accuracy")], "val_accuracy"
    return keras.losses.SparseCategoricalCrossentropy(), [keras.metrics.SparseCategoricalAccuracy(name="accuracy")], "val_accuracy"


def _schedule(lr: float, steps_per_epoch: int, epochs: int, warmup_epochs: int, kind: str = "cosine"):
    """Learning rate per step: linear warm-up then cosine decay to 1 % of ``lr``, or ``lr`` throughout.

    ``constant`` is the schedule of a stochastic-weight-averaging phase: continue a trained
    model at a fixed rate and average the weights of its epochs (``--average-last``).
    """
    import keras

    if kind == "constant":
        return lr
    if kind != "cosine":
        raise ValueError(f"unknown learning-rate schedule {kind!r}; use cosine or constant")
    warm = min(warmup_epochs, max(epochs - 1, 0)) * steps_per_epoch
    total = max(epochs * steps_per_epoch - warm, 1)
    if warm:
        return keras.optimizers.schedules.CosineDecay(lr * 0.1, total, alpha=0.01, warmup_target=lr, warmup_steps=warm)
    return keras.optimizers.schedules.CosineDecay(lr, total, alpha=0.01)


def _load_init(path: str, multi_label: bool):
    """The model a run starts from, under the current dtype policy.

    A saved model's layers keep the float32 policy they were saved with; when it is a
    registered architecture, the same model is rebuilt under the run's policy (bf16 mixed
    precision where the CPU has it) and the saved weights are copied in.
    """
    import keras

    from .models import MODELS, build_model

    base = keras.saving.load_model(path, safe_mode=True)
    if base.name not in MODELS or keras.mixed_precision.global_policy().name == "float32":
        return base
    try:
        fresh = build_model(base.name, base.output_shape[-1], multi_label, input_shape=tuple(base.input_shape[1:]))
        fresh.set_weights(base.get_weights())
    except (ValueError, TypeError) as e:  # a variant (other width) of the registered design
        log.info("init-from %s: keeping its float32 layers (%s)", path, e)
        return base
    log.info("init-from %s: rebuilt %s under the %s policy", path, base.name, keras.mixed_precision.global_policy().name)
    return fresh


def _init_summary(path: str | None) -> dict | None:
    """What a run started from: the file's SHA-256 and, from its metadata, how that model was trained."""
    if not path:
        return None
    from ..errors import ModelError
    from ..metadata import read_metadata, sha256_file

    p = Path(path)
    if not p.is_file():
        return {"file": p.name}
    out: dict = {"file": p.name, "sha256": sha256_file(p)}
    try:
        meta = read_metadata(p)
    except ModelError:  # a .keras without its metadata sidecar: the hash still names it
        return out
    ex = meta.extra
    out.update({k: ex.get(k) for k in ("git_revision", "epochs_run", "train_wall_seconds", "best_val_accuracy")})
    out.update({"model_name": meta.model_name, "label_set": meta.label_set})
    if ex.get("init_from"):  # a chain of runs keeps its whole history
        out["init_from"] = ex["init_from"]
    return out


def _replace_head(model, num_classes: int, multi_label: bool):
    """Keep everything up to the last Dense layer of ``model``; put a new head on it."""
    import keras
    from keras import layers

    body_out = model.layers[-2].output
    out = layers.Dense(num_classes, activation="sigmoid" if multi_label else "softmax", name="predictions_new", dtype="float32")(body_out)
    return keras.Model(model.inputs, out, name=model.name)


# ----------------------------------------------------------------- main entry
def train(cfg: TrainConfig) -> Path:
    """Train per ``cfg``; returns the run folder. Re-running with the same ``out`` resumes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from .data import load_dataset
    from .models import MODELS, build_model

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.__dict__, indent=1))
    keras.utils.set_random_seed(cfg.seed)
    use_bf16 = cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and _cpu_has_bf16())
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if use_bf16 else "float32")

    ds = load_dataset(cfg.data, cfg.label_set, cfg.ferplus_votes, cfg.ferplus_mode, cfg.limit)
    ls = ds.label_set
    train_split, val_split = ds["train"], ds["val"]
    spec = MODELS[cfg.model]
    soft = train_split.y.ndim == 2 and not ls.multi_label
    loss, metrics, monitor = _loss_and_metrics(ls.multi_label, soft, cfg.label_smoothing)
    onehot = (not ls.multi_label) and (soft or cfg.label_smoothing > 0)

    def targets(split):
        if onehot and split.y.ndim == 1:
            return np.eye(ls.num_classes, dtype=np.float32)[split.y]
        return split.y.astype(np.float32) if split.y.ndim == 2 else split.y

    rng = np.random.default_rng(cfg.seed)
    tr_idx = np.arange(len(train_split))
    if cfg.balance == "oversample" and train_split.y.ndim == 1:
        tr_idx = oversample_indices(train_split.y, rng)
    cw = class_weights(ds.class_counts("train"), cfg.balance) if not ls.multi_label else None
    if cfg.report and not (out / "class_distribution.png").exists():
        from .report import write_data_overview

        write_data_overview(ds, out)
    log.info("data %s: train %d, val %d, labels %s, balance=%s", ds.source, len(tr_idx), len(val_split), ",".join(ls.labels), cfg.balance)

    augmenter = make_augmenter(cfg.seed, cfg.random_erasing) if cfg.augment else None
    train_ds = make_dataset(train_split.x[tr_idx], targets(train_split)[tr_idx], spec.input_shape, cfg.batch_size, True, cfg.seed, augmenter)
    val_ds = make_dataset(val_split.x, targets(val_split), spec.input_shape, cfg.batch_size, False, cfg.seed)
    steps = int(np.ceil(len(tr_idx) / cfg.batch_size))

    if cfg.init_from:
        base = _load_init(cfg.init_from, ls.multi_label)
        model = _replace_head(base, ls.num_classes, ls.multi_label) if base.output_shape[-1] != ls.num_classes else base
    else:
        kwargs = dict(cfg.model_kwargs)
        if spec.backbone and cfg.backbone_weights:
            kwargs["weights"] = cfg.backbone_weights
        model = build_model(cfg.model, ls.num_classes, ls.multi_label, **kwargs)
    lr = cfg.learning_rate or spec.learning_rate

    # Stages: (name, epochs, lr, freeze body?)
    stages = []
    if cfg.head_epochs and (cfg.init_from or spec.backbone):
        stages.append(("head", cfg.head_epochs, lr, True))
        stages.append(("finetune", cfg.epochs, lr * cfg.finetune_lr_factor, False))
    else:
        stages.append(("train", cfg.epochs, lr, False))

    t0 = time.time()
    history_csv = out / "history.csv"
    best_path = out / "best.keras"
    epoch_offset = 0
    for stage_name, stage_epochs, stage_lr, freeze in stages:
        for layer in model.layers[:-1]:
            layer.trainable = not freeze
        model.layers[-1].trainable = True
        model.compile(optimizer=make_optimizer(_schedule(stage_lr, steps, stage_epochs, cfg.warmup_epochs, cfg.lr_schedule), cfg.weight_decay),
                      loss=loss, metrics=metrics)
        best = _best_so_far(history_csv, monitor)
        callbacks = [
            keras.callbacks.BackupAndRestore(str(out / f"backup_{stage_name}"), delete_checkpoint=False),
            keras.callbacks.ModelCheckpoint(str(best_path), monitor=monitor, mode="max", save_best_only=True,
                                            initial_value_threshold=best),
            *([_epoch_timer()] if _logs_epoch_seconds(history_csv) else []),  # before the CSV logger, which writes it
            keras.callbacks.CSVLogger(str(history_csv), append=True),
            keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience, restore_best_weights=False),
        ]
        if cfg.average_last > 1 and stage_name != "head":
            from .averaging import snapshot_callback

            callbacks.append(snapshot_callback(out, stage_epochs, cfg.average_last))
        log.info("stage %s: %d epochs at lr %.2g (%s)", stage_name, stage_epochs, stage_lr, "body frozen" if freeze else "all layers train")
        model.fit(train_ds, validation_data=val_ds, epochs=stage_epochs, class_weight=cw, callbacks=callbacks, shuffle=False,
                  verbose=1 if sys.stderr.isatty() else 2)
        epoch_offset += stage_epochs
    wall = time.time() - t0
    return finalize_run(out, ds, wall=wall, report=cfg.report)


def finalize_run(run_dir: str | Path, ds=None, wall: float | None = None, report: bool = True,
                 average_last: int | None = None) -> Path:
    """Best checkpoint -> float32 ``model.keras`` (no optimizer state) + metadata sidecar (+ the report).

    For single-label models the best checkpoint competes on validation with itself after
    BatchNorm re-estimation and, with ``average_last`` (default: the run's ``--average-last``),
    with averages of the last epochs' weights; a continued run's starting model sets the bar
    too (see :mod:`.averaging`). ``wall`` is this call's training time (None: finalisation
    only). Also usable on a run that is still training or was stopped early.
    """
    import keras
    import tensorflow as tf

    from ..metadata import ModelMetadata, sidecar_path
    from .data import load_dataset
    from .models import MODELS, float32_copy

    out = Path(run_dir)
    cfg = TrainConfig(**json.loads((out / "config.json").read_text()))
    if ds is None:
        ds = load_dataset(cfg.data, cfg.label_set, cfg.ferplus_votes, cfg.ferplus_mode, cfg.limit)
    ls = ds.label_set
    spec = MODELS[cfg.model]
    monitor = "val_auc" if ls.multi_label else "val_accuracy"
    history_csv = out / "history.csv"
    best_path = out / "best.keras"
    best_model = keras.saving.load_model(str(best_path), safe_mode=True)
    k = cfg.average_last if average_last is None else average_last
    final_weights = None
    if not ls.multi_label:  # BatchNorm re-estimation always competes; averages when snapshots were kept
        from .averaging import select_final_weights, val_accuracy

        best_single = _best_so_far(history_csv, monitor)
        start_val = None
        if cfg.init_from and Path(cfg.init_from).is_file():
            start = keras.saving.load_model(cfg.init_from, safe_mode=True)
            if start.output_shape[-1] == ls.num_classes:  # a continued run: the starting point is a candidate too
                start_val = val_accuracy(start, ds["val"].x, ds["val"].hard_labels)
        threshold = max((v for v in (best_single, start_val) if v is not None), default=0.0)
        chosen, cands = select_final_weights(best_model, out, ds["val"].x, ds["val"].hard_labels, ds["train"].x,
                                             threshold, k, seed=cfg.seed)
        final_weights = {"best_single_epoch_val_accuracy": best_single, "chosen": chosen.to_dict() if chosen else None,
                         "candidates": [c.to_dict() for c in cands],
                         **({"starting_model_val_accuracy": start_val} if start_val is not None else {})}
        log.info("final weights: %s", chosen.name if chosen else "best single epoch (no candidate beat it on val)")
        if chosen is None and start_val is not None and start_val >= (best_single or 0):
            log.warning("the starting model %s scores %.4f on val, more than anything this run produced "
                        "(best epoch %.4f): ship the starting model instead", cfg.init_from, start_val, best_single or 0)
    keras.mixed_precision.set_global_policy("float32")
    final = float32_copy(best_model)
    final_path = out / "model.keras"
    final.save(final_path)
    prev = json.loads((out / "metadata.json").read_text()).get("extra", {}) if (out / "metadata.json").exists() else {}
    wall_total = _epoch_seconds(history_csv)  # every epoch of every session, also for a run stopped early
    if wall_total is None:  # runs logged before epoch times were
        wall_total = (prev.get("train_wall_seconds") or 0) + (wall or 0)
    # a finalisation alone (no training in this call) keeps the revision of the code that trained the model
    revisions = ({"git_revision": _git_revision()} if wall is not None or "git_revision" not in prev else
                 {"git_revision": prev["git_revision"], "finalized_at_git_revision": _git_revision()})
    meta = ModelMetadata(labels=list(ls.labels), input_size=spec.input_shape[:2], color="gray" if spec.input_shape[2] == 1 else "rgb",
                         mean=0.0, std=1.0, multi_label=ls.multi_label, model_name=cfg.model, label_set=ls.name,
                         precision="fp32", format="keras", data_sha256=ds.sha256,
                         extra={**revisions, "epochs_run": _epochs_done(history_csv),
                                "epochs_planned": cfg.epochs + (cfg.head_epochs or 0), "train_wall_seconds": round(wall_total, 1),
                                "monitor": monitor, "best_" + monitor: _best_so_far(history_csv, monitor),
                                "params": int(final.count_params()), "host": platform.node(), "cpu_count": os.cpu_count(),
                                "tensorflow": tf.__version__, "keras": keras.__version__, "config": cfg.__dict__,
                                **({"init_from": _init_summary(cfg.init_from)} if cfg.init_from else {}),
                                **({"final_weights": final_weights} if final_weights else {})})
    sidecar_path(final_path).write_text(meta.to_json())
    (out / "metadata.json").write_text(meta.to_json())
    log.info("saved %s (%d params), best %s %s", final_path, final.count_params(), monitor, meta.extra["best_" + monitor])
    if report:
        from .report import write_report

        write_report(out, ds)
    return out


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from . import MODEL_NAMES

    p = parser or argparse.ArgumentParser(prog="edge-emotion train", description=__doc__)
    d = TrainConfig()
    p.add_argument("--model", default=d.model, choices=MODEL_NAMES, help="model to train (default: %(default)s)")
    p.add_argument("--data", default=d.data, help="fer2013.npz, Kaggle fer2013.csv or an image folder (default: %(default)s)")
    p.add_argument("--labels", dest="label_set", default=d.label_set, help="label set: fer7, ferplus8, emotic26 or a JSON file (default: %(default)s)")
    p.add_argument("--out", "-o", default=None, help="run folder (default: runs/<model>); an existing run resumes")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", dest="learning_rate", type=float, default=None, help="peak learning rate (default: the model's)")
    p.add_argument("--lr-schedule", default=d.lr_schedule, choices=["cosine", "constant"],
                   help="warm-up + cosine decay, or a constant rate (a weight-averaging phase; default: %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--random-erasing", type=float, default=d.random_erasing, metavar="P",
                   help="erase a random patch of a training image with probability P (default: off)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, metavar="WD",
                   help="decoupled weight decay (AdamW) on kernels; 0 uses Adam (default: %(default)s)")
    p.add_argument("--average-last", type=int, default=d.average_last, metavar="K",
                   help="keep the last K epochs' weights and ship their average if it beats the best epoch on validation "
                        "(stochastic weight averaging; default: off)")
    p.add_argument("--balance", default=d.balance, choices=["none", "weights", "sqrt", "oversample"], help="class balancing")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    p.add_argument("--mixed-precision", default=d.mixed_precision, choices=["auto", "bf16", "off"])
    p.add_argument("--ferplus-mode", default=d.ferplus_mode, choices=["majority", "soft"])
    p.add_argument("--ferplus-votes", default=None, help="ferplus_labels.npz (default: beside --data)")
    p.add_argument("--init-from", default=None, help=".keras model to start from: transfer to another label set, or continue it (same classes)")
    p.add_argument("--backbone-weights", default=None, help="local weights file for resnet50/densenet121 (no downloads)")
    p.add_argument("--head-epochs", type=int, default=0, help="stage 1 epochs with a frozen body before fine-tuning")
    p.add_argument("--no-report", dest="report", action="store_false")
    p.add_argument("--finalize", metavar="RUN", default=None,
                   help="write model.keras, metadata and report from RUN's best checkpoint (BatchNorm re-estimation and "
                        "weight averages compete on val), then exit; works on a run that is still training")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    if args.out is None:
        cfg.out = f"runs/{cfg.model}"
    return cfg


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    run(args)
    return 0


def run(args: argparse.Namespace) -> Path:
    """Train per the parsed command line, or only finalise an existing run with ``--finalize RUN``."""
    if args.finalize:
        return finalize_run(args.finalize, report=args.report, average_last=args.average_last or None)
    return train(config_from_args(args))


if __name__ == "__main__":
    sys.exit(main())
