"""Final weights: BatchNorm re-estimation and weight averaging of the last epochs.

BatchNorm's moving statistics are exponential averages over *augmented* training batches
(brightness, contrast, rotation with reflected borders, zoom, erasing), while test images
are not augmented. Re-estimating them once, as a plain mean over clean training images
(:func:`refresh_batchnorm`, SWA's ``update_bn``), removes that mismatch: on the shipped
``edge_cnn`` it raised PublicTest accuracy from 67.0 % to 69.0 % without changing a weight.

The trainer's ``--average-last K`` also keeps a snapshot of the model's variables after each
of the last K epochs (``<run>/epochs/epoch_NNN.npz``, about 5 MB each for ``edge_cnn``) for
stochastic weight averaging (Izmailov et al. 2018). At the end, :func:`select_final_weights`
scores the best epoch with re-estimated statistics and the averages of the last k snapshots for a
few k <= K, with and without re-estimated statistics, on the validation split. The run's
model is the best candidate only if it beats the best single epoch on validation; the test
split is never looked at. Every candidate's score is recorded in the run's metadata.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..predict import keras_predictor, predict_images

log = logging.getLogger(__name__)

__all__ = ["snapshot_callback", "Candidate", "snapshot_files", "average_snapshots", "refresh_batchnorm",
           "select_final_weights", "fixed_final_weights", "val_accuracy"]

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


def refresh_batchnorm(model, images: np.ndarray, batch: int = 256) -> None:
    """Re-estimate every BatchNorm layer's moving mean/variance as the plain average over ``images``.

    Averaged weights do not match averaged statistics; this is SWA's ``update_bn``. Each
    BatchNorm layer's momentum is set to t/(t+1) on batch t, which turns the exponential
    moving average into a cumulative one, then restored.
    """
    import keras

    bns = [l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [b.momentum for b in bns]
    step = keras_predictor(model, training=True)
    try:
        for t, i in enumerate(range(0, len(images), batch)):
            for b in bns:
                b.momentum = t / (t + 1)
            step(images[i : i + batch])
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
    val_accuracy: float | None  # None: set by rule (a refit), not scored

    def to_dict(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "refresh_bn": self.refresh_bn, "val_accuracy": self.val_accuracy}


def val_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on uint8 images ``x``, computed the way every candidate is scored."""
    return float((predict_images(keras_predictor(model), x, batch=512).argmax(1) == y).mean())


def _has_batchnorm(model) -> bool:
    import keras

    return any(isinstance(l, keras.layers.BatchNormalization) for l in _all_layers(model))


def _bn_images(train_x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The training images BatchNorm statistics are re-estimated on: ``n`` drawn without replacement."""
    rng = np.random.default_rng(seed)
    return train_x[rng.choice(len(train_x), min(n, len(train_x)), replace=False)]


def _average_name(files: list[Path]) -> tuple[list[int], str]:
    """The epochs of these snapshots, and the candidate name of their average ("average of epochs 1-8")."""
    epochs = [int(_NAME.search(f.name).group(1)) for f in files]
    return epochs, f"average of epochs {epochs[0]}-{epochs[-1]}"


def select_final_weights(model, run_dir: str | Path, val_x: np.ndarray, val_y: np.ndarray, train_x: np.ndarray, best_val: float,
                         max_k: int, n_bn: int = 8192, seed: int = 0) -> tuple[Candidate | None, list[Candidate]]:
    """Score the final-weight candidates on validation and keep the best one if it beats ``best_val``.

    Candidates: the best epoch with re-estimated BatchNorm statistics (when the model has
    BatchNorm), and averages of the last k snapshots (k = 2, 3, 5, 8, 12, ... <= max_k), with
    and without re-estimated statistics. ``model`` (the best epoch) ends up holding the
    winner; if none beats ``best_val`` it is left unchanged and (None, candidates) returned.
    """
    files = snapshot_files(run_dir) if max_k > 1 else []
    original = [np.array(v.numpy()) for v in model.weights]
    has_bn = _has_batchnorm(model)
    bn_x = _bn_images(train_x, n_bn, seed)
    cands: list[Candidate] = []
    winner: list[np.ndarray] | None = None  # variables of the best candidate so far (kept, not recomputed)

    def score(name: str, epochs: list[int], weights: list[np.ndarray], refresh: bool) -> None:
        nonlocal winner
        set_variables(model, weights)
        if refresh:
            refresh_batchnorm(model, bn_x)
        cands.append(Candidate(name + (" + BN refresh" if refresh else ""), epochs, refresh, val_accuracy(model, val_x, val_y)))
        log.info("final weights: %s -> val accuracy %.4f (to beat: %.4f)", cands[-1].name, cands[-1].val_accuracy, best_val)
        if cands[-1] is max(cands, key=lambda c: c.val_accuracy):
            winner = [np.array(v.numpy()) for v in model.weights]

    if has_bn:
        score("best epoch", [], original, True)
    ks = sorted({k for k in (2, 3, 5, 8, 12, 20, 30, 50) if k <= min(max_k, len(files))} | {min(max_k, len(files))})
    for k in (k for k in ks if k >= 2):
        chosen = files[-k:]
        avg = average_snapshots(chosen)
        epochs, name = _average_name(chosen)
        for refresh in ((False, True) if has_bn else (False,)):
            score(name, epochs, avg, refresh)
    best = max(cands, key=lambda c: c.val_accuracy, default=None)
    if best is None or best.val_accuracy <= best_val:
        set_variables(model, original)
        return None, cands
    set_variables(model, winner)
    return best, cands


def fixed_final_weights(model, run_dir: str | Path, train_x: np.ndarray, k: int, n_bn: int = 8192,
                        seed: int = 0) -> Candidate | None:
    """A refit's final weights, set by rule rather than chosen on validation (there is none left).

    With ``k`` > 1 and snapshots on disk, ``model`` ends up holding the average of the last ``k``
    epochs' snapshots with re-estimated BatchNorm statistics (the form the recipe chose on
    validation before the refit); otherwise it is left as it is (the last epoch) and None is
    returned. The candidate's ``val_accuracy`` is None: it was not scored.
    """
    files = snapshot_files(run_dir)[-k:] if k > 1 else []
    if not files:
        return None
    if len(files) < k:
        log.warning("refit: %d snapshots on disk, %d asked for: averaging those", len(files), k)
    set_variables(model, average_snapshots(files))
    refresh = _has_batchnorm(model)
    if refresh:
        refresh_batchnorm(model, _bn_images(train_x, n_bn, seed))
    epochs, name = _average_name(files)
    return Candidate(name + (" + BN refresh" if refresh else ""), epochs, refresh, None)
