"""The pieces a training run is built from: data pipeline, augmentation, class balancing, loss, optimiser,
learning-rate schedule, and the model a run starts from (two-stage transfer)."""

from __future__ import annotations

import logging

import numpy as np

from ..preprocessing import Preprocessing
from .config import OPTIMIZERS

log = logging.getLogger(__name__)

__all__ = ["class_weights", "oversample_indices", "make_augmenter", "make_optimizer", "make_dataset", "mixup",
           "loss_and_metrics", "schedule", "load_init", "replace_head"]


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


def make_optimizer(schedule, weight_decay: float, optimizer: str = "adam"):
    """Adam (AdamW when ``weight_decay`` > 0), or SGD with Nesterov momentum 0.9; decoupled weight decay applies to
    kernels only (BatchNorm and biases are not decayed)."""
    import keras

    if optimizer == "sgd":
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=weight_decay or None)
    elif optimizer == "adam":
        if weight_decay <= 0:
            return keras.optimizers.Adam(schedule)
        opt = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer is one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if weight_decay > 0:
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def mixup(images, targets, alpha: float, seed: int):
    """Mixup (Zhang et al. 2018) within a batch: each sample becomes ``lam * itself + (1 - lam) * a random other
    sample of the batch``, images and (one-hot or soft) targets alike, ``lam ~ Beta(alpha, alpha)`` per sample."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    g1 = tf.random.gamma([n], alpha, seed=seed)
    g2 = tf.random.gamma([n], alpha, seed=seed + 1)
    lam = g1 / (g1 + g2)
    perm = tf.random.shuffle(tf.range(n), seed=seed + 2)
    # mixed in float32 and cast back: under bf16 mixed precision the images arrive as bfloat16
    li = tf.reshape(lam, [-1, 1, 1, 1])
    lt = tf.cast(tf.reshape(lam, [-1, 1]), targets.dtype)
    x = tf.cast(images, tf.float32)
    return (tf.cast(li * x + (1.0 - li) * tf.gather(x, perm), images.dtype),
            lt * targets + (1.0 - lt) * tf.gather(targets, perm))


def make_dataset(x: np.ndarray, y: np.ndarray, preprocessing: Preprocessing, batch_size: int, training: bool, seed: int,
                 augmenter=None, mixup_alpha: float = 0.0, teacher=None, distill_weight: float = 0.0):
    """A ``tf.data`` pipeline of (model input, target): images through ``preprocessing.tf_batch``, then augmentation,
    then (``mixup_alpha`` > 0, targets one-hot or soft) mixup, then (``teacher``: a function of the batch, see
    :func:`.soft_targets.teacher_on_views`) target = (1 - ``distill_weight``) x target + ``distill_weight`` x the
    teacher's probabilities on the batch as the model will see it."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(min(len(x), 30000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda a, b: (preprocessing.tf_batch(a), b), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augmenter is not None:
        ds = ds.map(lambda a, b: (tf.clip_by_value(augmenter(a, training=True), 0.0, 255.0), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if training and mixup_alpha > 0:
        if y.ndim != 2:
            raise ValueError("mixup needs one-hot or soft targets")
        ds = ds.map(lambda a, b: mixup(a, b, mixup_alpha, seed), num_parallel_calls=tf.data.AUTOTUNE)
    if training and teacher is not None:
        if y.ndim != 2:
            raise ValueError("distillation needs one-hot or soft targets")
        w = float(distill_weight)
        ds = ds.map(lambda a, b: (a, (1.0 - w) * b + w * teacher(a)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def loss_and_metrics(multi_label: bool, soft: bool, label_smoothing: float):
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


def schedule(lr: float, steps_per_epoch: int, epochs: int, warmup_epochs: int, kind: str = "cosine"):
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


def load_init(path: str):
    """The model a run starts from, under the current dtype policy.

    A saved model's layers keep the float32 policy they were saved with; under a mixed policy (bf16 where the CPU
    has it) the same graph is rebuilt from its config under that policy, output layers float32, and the saved
    weights are copied in, whatever builder options (``--model-arg``) made it.
    """
    import keras

    from .models import policy_copy

    base = keras.saving.load_model(path, safe_mode=True)
    policy = keras.mixed_precision.global_policy().name
    if policy == "float32":
        return base
    try:
        fresh = policy_copy(base, policy)
    except (ValueError, TypeError, KeyError) as e:  # e.g. a subclassed model without a functional config
        log.warning("init-from %s: keeping its float32 layers, training will be slower (%s)", path, e)
        return base
    log.info("init-from %s: rebuilt %s under the %s policy", path, base.name, policy)
    return fresh


def replace_head(model, num_classes: int, multi_label: bool):
    """Keep everything up to the last Dense layer of ``model``; put a new head on it."""
    import keras
    from keras import layers

    body_out = model.layers[-2].output
    out = layers.Dense(num_classes, activation="sigmoid" if multi_label else "softmax", name="predictions_new", dtype="float32")(body_out)
    return keras.Model(model.inputs, out, name=model.name)
