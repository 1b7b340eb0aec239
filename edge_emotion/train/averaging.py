"""Weight averaging of the last epochs (stochastic weight averaging, Izmailov et al. 2018).

The trainer's ``--average-last K`` keeps a snapshot of the model's variables after each
of the last K epochs (``<run>/epochs/epoch_NNN.npz``, about 5 MB each for ``edge_cnn``).
At the end, :func:`select_average` builds the average of the last k snapshots for a few
k <= K, optionally re-estimates the BatchNorm statistics of the averaged weights on
training images, and scores every candidate on the validation split. The run's model is
the averaged one only if it beats the best single epoch on validation; the test split
is never looked at. Every candidate's score is recorded in the run's metadata.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["snapshot_callback", "Candidate", "snapshot_files", "average_snapshots", "refresh_batchnorm", "select_average"]

SNAPSHOT_DIR = "epochs"
_NAME = re.compile(r"epoch_(\d+)\.npz$")


def snapshot_files(run_dir: str | Path) -> list[Path]:
    """The run's epoch snapshots, oldest first."""
    d = Path(run_dir) / SNAPSHOT_DIR
    files = [p for p in d.glob("epoch_*.npz") if _NAME.search(p.name)] if d.is_dir() else []
    return sorted(files, key=lambda p: int(_NAME.search(p.name).group(1)))


def save_snapshot(model, path: Path) -> None:
    """Every variable of ``model`` (weights and BatchNorm statistics) in ``model.weights`` order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, *[np.asarray(v.numpy(), dtype=np.float32) for v in model.weights])
    tmp.replace(path)  # a run killed mid-write never leaves a truncated snapshot behind


def snapshot_callback(run_dir: str | Path, epochs: int, keep: int):
    """A Keras callback that saves the model's variables after each of the last ``keep`` of ``epochs`` epochs."""
    import keras

    class SnapshotCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 > epochs - keep:
                save_snapshot(self.model, Path(run_dir) / SNAPSHOT_DIR / f"epoch_{epoch + 1:03d}.npz")

    return SnapshotCallback()


def average_snapshots(files: list[Path]) -> list[np.ndarray]:
    """Element-wise mean of the variables stored in ``files`` (all from the same model)."""
    if not files:
        raise ValueError("no snapshots to average")
    total: list[np.ndarray] | None = None
    for f in files:
        with np.load(f) as z:
            arrays = [z[f"arr_{i}"].astype(np.float64) for i in range(len(z.files))]
        if total is None:
            total = arrays
        else:
            if [a.shape for a in arrays] != [t.shape for t in total]:
                raise ValueError(f"{f.name} does not hold the same variables as the other snapshots")
            total = [t + a for t, a in zip(total, arrays)]
    return [(t / len(files)).astype(np.float32) for t in total]


def set_variables(model, arrays: list[np.ndarray]) -> None:
    shapes = [tuple(v.shape) for v in model.weights]
    if [a.shape for a in arrays] != shapes:
        raise ValueError(f"snapshot variables {[a.shape for a in arrays][:4]}... do not match the model's {shapes[:4]}...")
    for v, a in zip(model.weights, arrays):
        v.assign(a)


def refresh_batchnorm(model, images: np.ndarray, input_shape, batch: int = 256) -> None:
    """Re-estimate every BatchNorm layer's moving mean/variance as the plain average over ``images``.

    Averaged weights do not match averaged statistics; this is SWA's ``update_bn``. Each
    BatchNorm layer's momentum is set to t/(t+1) on batch t, which turns the exponential
    moving average into a cumulative one, then restored.
    """
    import keras

    from .trainer import to_model_input

    bns = [l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [b.momentum for b in bns]
    try:
        for t, i in enumerate(range(0, len(images), batch)):
            for b in bns:
                b.momentum = t / (t + 1)
            model(to_model_input(images[i : i + batch], input_shape), training=True)
    finally:
        for b, m in zip(bns, saved):
            b.momentum = m


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


@dataclass
class Candidate:
    name: str
    epochs: list[int]
    refresh_bn: bool
    val_accuracy: float

    def to_dict(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "refresh_bn": self.refresh_bn, "val_accuracy": self.val_accuracy}


def _accuracy(model, x: np.ndarray, y: np.ndarray, input_shape, batch: int = 512) -> float:
    from .trainer import to_model_input

    probs = np.concatenate([np.asarray(model(to_model_input(x[i : i + batch], input_shape), training=False), np.float32)
                            for i in range(0, len(x), batch)])
    return float((probs.argmax(1) == y).mean())


def select_average(model, run_dir: str | Path, val_x: np.ndarray, val_y: np.ndarray, train_x: np.ndarray,
                   best_val: float, max_k: int, n_bn: int = 8192, seed: int = 0) -> tuple[Candidate | None, list[Candidate]]:
    """Try averages of the last k snapshots (k = 2, 3, 5, 8, 12, ... <= max_k), with and without
    re-estimated BatchNorm statistics; leave ``model`` holding the best one if it beats
    ``best_val`` on validation, else return (None, candidates) with ``model`` unchanged.
    """
    files = snapshot_files(run_dir)
    if len(files) < 2:
        log.info("weight averaging: %d snapshot(s), nothing to average", len(files))
        return None, []
    input_shape = tuple(model.input_shape[1:])
    original = [np.array(v.numpy()) for v in model.weights]
    ks = sorted({k for k in (2, 3, 5, 8, 12, 20, 30, 50) if k <= min(max_k, len(files))} | {min(max_k, len(files))})
    rng = np.random.default_rng(seed)
    bn_x = train_x[rng.choice(len(train_x), min(n_bn, len(train_x)), replace=False)]
    cands: list[Candidate] = []
    for k in ks:
        chosen = files[-k:]
        epochs = [int(_NAME.search(f.name).group(1)) for f in chosen]
        avg = average_snapshots(chosen)
        for refresh in (False, True):
            set_variables(model, avg)
            if refresh:
                refresh_batchnorm(model, bn_x, input_shape)
            acc = _accuracy(model, val_x, val_y, input_shape)
            cands.append(Candidate(f"average of epochs {epochs[0]}-{epochs[-1]}" + (" + BN refresh" if refresh else ""),
                                   epochs, refresh, acc))
            log.info("weight averaging: %s -> val accuracy %.4f (best single epoch %.4f)", cands[-1].name, acc, best_val)
    best = max(cands, key=lambda c: c.val_accuracy)
    if best.val_accuracy <= best_val:
        set_variables(model, original)
        return None, cands
    set_variables(model, average_snapshots([f for f in files if int(_NAME.search(f.name).group(1)) in best.epochs]))
    if best.refresh_bn:
        refresh_batchnorm(model, bn_x, input_shape)
    return best, cands
