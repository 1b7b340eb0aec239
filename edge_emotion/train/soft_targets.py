"""Soft training targets: knowledge distillation from teacher models and the FER+ vote distributions.

A run with ``distill_weight`` = a > 0 trains on ``(1 - a) * one-hot label + a * soft target`` (cross-entropy
is linear in its target, so this is the usual weighted sum of a label loss and a distillation loss). The
soft target of a training image is

- with teachers: the mean over teachers of each teacher's flip-averaged probabilities on the un-augmented
  image (so a mirrored training image keeps the same target), softened by ``temperature``; where the image
  has FER+ votes, mixed with them: ``(1 - b) * teachers + b * votes`` with b = ``ferplus_soft``;
- without teachers: the image's FER+ vote distribution (b is then ignored); images without usable votes keep
  their one-hot label.

FER+ votes (10 annotators per FER-2013 image) are mapped onto the run's labels by name; votes for classes
the run does not have (``contempt`` for fer7) are dropped, and images whose plurality is ``unknown`` or
``not a face``, or with no vote for one of the run's classes, have none.

Teacher predictions are computed once per run and kept in ``<run>/soft_targets_{train,val}.npz`` with what they were
computed from; a resumed run reuses them, a changed teacher list recomputes them.

With ``distill_views = "augmented"`` the teachers instead predict every training batch as the student sees it, after
augmentation and mixup (:func:`teacher_on_views`): the soft target then matches the exact crop, shift, rotation or mix
the student is asked about ("consistent" distillation, Beyer et al. 2022, *Knowledge distillation: a good teacher is
patient and consistent*), at the price of one teacher forward pass per step. It is a single pass on that view (the
view is already mirrored or not); FER+ votes cannot be mixed in that way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import Dataset, ferplus_emotion_votes
from ..labelsets import load_label_set
from ..metadata import read_metadata, sha256_file

log = logging.getLogger(__name__)

__all__ = ["ferplus_distribution", "teacher_distribution", "teacher_on_views", "soft_targets", "mix_targets",
           "SoftTargets", "teacher_identity"]


@dataclass
class SoftTargets:
    """Soft targets (N, K) for one split, which rows have one, and how they were made."""

    y: np.ndarray
    has: np.ndarray
    info: dict


def ferplus_distribution(votes_npz: str | Path, split: str, labels: tuple[str, ...] | list[str],
                         limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FER+ vote distributions of ``split``'s images over ``labels`` (mapped by class name), and which
    images have one. Rows align with ``fer2013.npz``'s split (first ``limit`` rows when given)."""
    names = list(load_label_set("ferplus8").labels)  # the vote columns' emotions, in their order
    missing = [lab for lab in labels if lab not in names]
    if missing:
        raise ValueError(f"FER+ votes have no class {', '.join(missing)}; they cover {', '.join(names)}")
    cols = [names.index(lab) for lab in labels]
    with np.load(votes_npz) as v:
        if f"votes_{split}" not in v:
            raise ValueError(f"{votes_npz}: no votes for split {split!r}; has {', '.join(sorted(v.files))}")
        votes, has = ferplus_emotion_votes(v, split)
    if limit:
        votes, has = votes[:limit], has[:limit]
    mapped = votes[:, cols]
    total = mapped.sum(axis=1, keepdims=True)
    has = has & (total[:, 0] > 0)
    return np.where(has[:, None], mapped / np.maximum(total, 1), 0).astype(np.float32), has


def _soften(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at another softmax temperature: p^(1/T), renormalised (T > 1 spreads them)."""
    if temperature == 1.0:
        return p
    q = np.power(np.clip(p, 1e-8, 1.0), 1.0 / temperature)
    return q / q.sum(axis=1, keepdims=True)


def teacher_distribution(teachers: list[str | Path], images: np.ndarray, labels: tuple[str, ...] | list[str],
                         temperature: float = 1.0, progress: bool = True) -> np.ndarray:
    """Mean over ``teachers`` (.keras models with their metadata sidecars) of their flip-averaged probabilities
    on ``images``, softened by ``temperature``. A teacher may predict more classes than the run has (a FER+
    8-class teacher for a fer7 run): its probabilities of the run's classes, by name, are renormalised."""
    from ..predict import keras_predictor, predict_with_flip
    from ..preprocessing import Preprocessing

    if temperature <= 0:
        raise ValueError(f"the distillation temperature must be positive, got {temperature}")
    total = None
    for path in teachers:
        model, meta, cols = _load_teacher(path, labels)
        plain, flipped = predict_with_flip(keras_predictor(model, Preprocessing.from_metadata(meta)), images,
                                           progress=f"teacher {Path(path).name}" if progress else None)
        p = ((plain + flipped) / 2)[:, cols]
        p = _soften(p / np.maximum(p.sum(axis=1, keepdims=True), 1e-8), temperature)
        total = p if total is None else total + p
    assert total is not None
    return (total / len(teachers)).astype(np.float32)


def _load_teacher(path: str | Path, labels: tuple[str, ...] | list[str]):
    """A teacher as (float32 Keras model, its metadata, the columns of the run's ``labels`` in its output)."""
    import keras

    from .models import float32_copy

    meta = read_metadata(Path(path))
    missing = [lab for lab in labels if lab not in meta.labels]
    if missing:
        raise ValueError(f"teacher {path} predicts {', '.join(meta.labels)}: it has no {', '.join(missing)}, "
                         "which the run's labels need")
    cols = [list(meta.labels).index(lab) for lab in labels]
    return float32_copy(keras.saving.load_model(str(path), safe_mode=True, compile=False)), meta, cols


def teacher_on_views(teachers: list[str | Path], labels: tuple[str, ...] | list[str], preprocessing,
                     temperature: float = 1.0):
    """A TensorFlow function: a batch of model inputs exactly as the student gets them (augmented, mixed) -> the mean
    over ``teachers`` of their probabilities of the run's ``labels`` on that batch (one pass, renormalised over
    ``labels``, softened by ``temperature``), float32 (B, K). Every teacher must take the student's input:
    the same :class:`~edge_emotion.preprocessing.Preprocessing` (size, colour, normalisation)."""
    import tensorflow as tf

    from ..preprocessing import Preprocessing

    if temperature <= 0:
        raise ValueError(f"the distillation temperature must be positive, got {temperature}")
    if not teachers:
        raise ValueError("distillation on augmented views needs at least one teacher")
    loaded = []
    for path in teachers:
        model, meta, cols = _load_teacher(path, labels)
        theirs = Preprocessing.from_metadata(meta)
        if theirs != preprocessing:
            raise ValueError(f"teacher {path} takes another input ({theirs}) than the student ({preprocessing}); "
                             "on augmented views a teacher sees the student's own input tensor: use teachers with "
                             "the student's input, or distill_views='image' (predictions on each teacher's own input)")
        loaded.append((model, tf.constant(cols, tf.int32)))

    def probabilities(x):
        total = None
        for model, cols in loaded:
            p = tf.gather(tf.cast(model(x, training=False), tf.float32), cols, axis=1)
            p = p / tf.maximum(tf.reduce_sum(p, axis=1, keepdims=True), 1e-8)
            if temperature != 1.0:
                q = tf.pow(tf.clip_by_value(p, 1e-8, 1.0), 1.0 / temperature)
                p = q / tf.reduce_sum(q, axis=1, keepdims=True)
            total = p if total is None else total + p
        return total / float(len(loaded))

    return probabilities


def teacher_identity(teachers: list[str | Path]) -> list[dict]:
    """What the teachers are, for a run's records: path and SHA-256 of each file."""
    return [{"path": str(t), "sha256": sha256_file(Path(t))} for t in teachers]


def mix_targets(onehot: np.ndarray, soft: SoftTargets, weight: float) -> np.ndarray:
    """``(1 - weight) * onehot + weight * soft`` where a soft target exists, the one-hot label elsewhere."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"distill_weight is a share in [0, 1], got {weight}")
    mixed = (1.0 - weight) * onehot + weight * soft.y
    return np.where(soft.has[:, None], mixed, onehot).astype(np.float32)


def soft_targets(ds: Dataset, split: str, teachers: list[str], temperature: float, ferplus_soft: float,
                 votes_npz: str | Path | None, limit: int | None, cache: Path | None = None,
                 resuming: bool = False) -> SoftTargets:
    """The soft targets of ``ds[split]`` (see the module docstring); cached in ``cache`` when given.

    ``resuming``: the run has finished epochs on the cached targets, so a cache made from other teachers, votes or
    data is an error (its remaining epochs would silently train on other targets), not a reason to recompute."""
    labels = ds.label_set.labels
    if not 0.0 <= ferplus_soft <= 1.0:
        raise ValueError(f"ferplus_soft is a share in [0, 1], got {ferplus_soft}")
    use_votes = ferplus_soft > 0 or not teachers
    key = {"split": split, "n": len(ds[split]), "labels": list(labels), "temperature": temperature,
           "teachers": teacher_identity(teachers),
           "ferplus_soft": ferplus_soft if teachers else 1.0, "votes": None, "data_sha256": ds.sha256}
    votes = has_votes = None
    if use_votes:
        if votes_npz is None or not Path(votes_npz).is_file():
            raise FileNotFoundError(f"FER+ votes {votes_npz} not found; pass --ferplus-votes ferplus_labels.npz "
                                    "(it holds the votes for fer2013.npz's images)")
        votes, has_votes = ferplus_distribution(votes_npz, split, labels, limit)
        if len(votes) != len(ds[split]):
            raise ValueError(f"{votes_npz} has {len(votes)} rows for split {split!r}, the dataset {len(ds[split])}; "
                             "the votes belong to another copy of FER-2013")
        key["votes"] = {"path": str(votes_npz), "sha256": sha256_file(Path(votes_npz)), "images_with_votes": int(has_votes.sum())}
    if cache is not None and cache.is_file():
        with np.load(cache) as c:
            if json.loads(str(c["info"])) == key:
                log.info("soft targets: reusing %s", cache)
                return SoftTargets(c["y"], c["has"], key)
            if resuming:
                was = json.loads(str(c["info"]))
                changed = [k for k in key if key[k] != was.get(k)]
                raise ValueError(f"{cache} was made from other {', '.join(changed)} than this run now has: this run "
                                 f"trained on it, so resuming would change its targets halfway. Restore the files it "
                                 f"started with (recorded in {cache.with_name('soft_targets.json').name}), or start a "
                                 f"new run (another --out)")
        log.info("soft targets: %s was made from other teachers or votes; recomputing", cache)

    if teachers:
        y = teacher_distribution(teachers, ds[split].x, labels, temperature)
        has = np.ones(len(y), bool)
        if votes is not None and ferplus_soft > 0:
            y = np.where(has_votes[:, None], (1 - ferplus_soft) * y + ferplus_soft * votes, y).astype(np.float32)
    else:
        y, has = votes, has_votes
    out = SoftTargets(np.asarray(y, np.float32), np.asarray(has, bool), key)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, y=out.y, has=out.has, info=json.dumps(key))
    log.info("soft targets for %s: %d of %d images (teachers: %s; FER+ votes: %s)", split, int(out.has.sum()), len(out.y),
             ", ".join(Path(t).name for t in teachers) or "none",
             f"{key['votes']['images_with_votes']} images" if key["votes"] else "not used")
    return out
