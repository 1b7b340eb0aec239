"""The training loop: one call from a configuration to a finished run folder.

Resumable: ``keras.callbacks.BackupAndRestore`` keeps the model and optimiser state of
the last finished epoch in ``<run>/backup_<stage>``; running the same command again continues
from there (the learning-rate schedule is a function of the step count, so it resumes
exactly; the best-checkpoint threshold is restored from ``history.csv``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..preprocessing import Preprocessing
from .config import TrainConfig
from .finalize import finalize_run
from .history import best_so_far, epochs_done, logs_epoch_seconds
from .pipeline import (class_weights, load_init, loss_and_metrics, make_augmenter, make_dataset, make_optimizer,
                       oversample_indices, replace_head, schedule)

log = logging.getLogger(__name__)

__all__ = ["train"]


def _cpu_has_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text() or "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


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


def _with_soft_targets(cfg: TrainConfig, ds, onehot: np.ndarray, out: Path, preprocessing: Preprocessing):
    """The training targets with the run's soft targets mixed in (:mod:`.soft_targets`), and, for distillation on
    augmented views, the teachers' function the pipeline applies to each batch (else None); logs what the teachers
    score on the validation split, so a run says how strong its teacher was."""
    from .soft_targets import mix_targets, soft_targets, teacher_on_views

    if onehot.ndim != 2 or ds.label_set.multi_label:
        raise ValueError("soft targets (distillation, FER+ votes) need a single-label dataset")
    votes = cfg.ferplus_votes or str(Path(cfg.data).with_name("ferplus_labels.npz"))
    args = (cfg.teachers, cfg.distill_temperature, cfg.ferplus_soft, votes, cfg.limit)
    on_views = cfg.distill_views == "augmented"
    # a resumed run keeps the targets it started with: a teacher file that changed since stops it (on augmented views
    # the val cache, made from the same teachers, is that check)
    resuming = (out / "history.csv").is_file() and epochs_done(out / "history.csv") > 0
    val_soft = soft_targets(ds, "val", *args, cache=out / "soft_targets_val.npz", resuming=resuming)
    val_y = ds["val"].hard_labels
    acc = float((np.argmax(val_soft.y, axis=1) == val_y)[val_soft.has].mean()) if val_soft.has.any() else float("nan")
    summary = {"views": cfg.distill_views, "val_accuracy": round(acc, 4), "val_images": int(val_soft.has.sum())}
    if on_views:
        log.info("soft targets: the teachers' flip-averaged val accuracy %.2f%% (%d images); they predict every "
                 "augmented training batch; target = %.2f x label + %.2f x teachers", 100 * acc, int(val_soft.has.sum()),
                 1 - cfg.distill_weight, cfg.distill_weight)
        summary.update({k: v for k, v in val_soft.info.items() if k not in ("split", "n")})
        (out / "soft_targets.json").write_text(json.dumps(summary, indent=1))
        return onehot, teacher_on_views(cfg.teachers, ds.label_set.labels, preprocessing, cfg.distill_temperature)
    train_soft = soft_targets(ds, "train", *args, cache=out / "soft_targets_train.npz", resuming=resuming)
    agree = float((np.argmax(train_soft.y, axis=1) == ds["train"].hard_labels)[train_soft.has].mean())
    log.info("soft targets: val accuracy of the soft targets' top class %.2f%% (%d images); on train they agree with "
             "the label on %.2f%%; target = %.2f x label + %.2f x soft", 100 * acc, int(val_soft.has.sum()), 100 * agree,
             1 - cfg.distill_weight, cfg.distill_weight)
    summary.update({"train_label_agreement": round(agree, 4), "train_images": int(train_soft.has.sum()), **train_soft.info})
    (out / "soft_targets.json").write_text(json.dumps(summary, indent=1))
    return mix_targets(onehot, train_soft, cfg.distill_weight), None


def train(cfg: TrainConfig) -> Path:
    """Train per ``cfg``; returns the run folder. Re-running with the same ``out`` resumes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from ..datasets import load_dataset
    from .models import MODELS, build_model

    out = Path(cfg.out)
    cfg.save()
    keras.utils.set_random_seed(cfg.seed)
    use_bf16 = cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and _cpu_has_bf16())
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if use_bf16 else "float32")

    ds = load_dataset(cfg.data, cfg.label_set, cfg.ferplus_votes, cfg.ferplus_mode, cfg.limit)
    if cfg.refit:
        ds = ds.with_val_in_train()
        log.info("refit: training on train + val (%d + %d images); val is logged but no longer held out, and "
                 "nothing is chosen on it", ds.info["train_images"], ds.info["val_images"])
    ls = ds.label_set
    train_split, val_split = ds["train"], ds["val"]
    spec = MODELS[cfg.model]
    soft = (train_split.y.ndim == 2 or cfg.uses_soft_targets or cfg.mixup > 0) and not ls.multi_label
    loss, metrics, monitor = loss_and_metrics(ls.multi_label, soft, cfg.label_smoothing)
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

    prep = Preprocessing.for_input_shape(spec.input_shape)
    train_y, teacher = targets(train_split), None
    if cfg.uses_soft_targets:
        train_y, teacher = _with_soft_targets(cfg, ds, train_y, out, prep)
    augmenter = make_augmenter(cfg.seed, cfg.random_erasing) if cfg.augment else None
    train_ds = make_dataset(train_split.x[tr_idx], train_y[tr_idx], prep, cfg.batch_size, True, cfg.seed, augmenter,
                            mixup_alpha=cfg.mixup, teacher=teacher, distill_weight=cfg.distill_weight)
    val_ds = make_dataset(val_split.x, targets(val_split), prep, cfg.batch_size, False, cfg.seed)
    steps = int(np.ceil(len(tr_idx) / cfg.batch_size))

    if cfg.init_from:
        base = load_init(cfg.init_from)
        model = replace_head(base, ls.num_classes, ls.multi_label) if base.output_shape[-1] != ls.num_classes else base
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
        rate = schedule(stage_lr, steps, stage_epochs, cfg.warmup_epochs, cfg.lr_schedule)
        model.compile(optimizer=make_optimizer(rate, cfg.weight_decay, cfg.optimizer), loss=loss, metrics=metrics)
        best = best_so_far(history_csv, monitor)
        callbacks = [
            keras.callbacks.BackupAndRestore(str(out / f"backup_{stage_name}"), delete_checkpoint=False),
            # a refit chooses nothing on val: its checkpoint is the last epoch, and it runs every planned epoch
            keras.callbacks.ModelCheckpoint(str(best_path), monitor=monitor, mode="max", save_best_only=not cfg.refit,
                                            initial_value_threshold=None if cfg.refit else best),
            *([_epoch_timer()] if logs_epoch_seconds(history_csv) else []),  # before the CSV logger, which writes it
            keras.callbacks.CSVLogger(str(history_csv), append=True),
            *([] if cfg.refit else [keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience,
                                                                  restore_best_weights=False)]),
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
