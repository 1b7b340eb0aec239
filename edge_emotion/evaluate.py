"""Classification metrics in plain numpy (no scikit-learn needed), and evaluation of any model file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class EvalResult:
    model: str
    split: str
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    labels: list[str]
    tta_accuracy: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> str:
        s = f"{Path(self.model).name} on {self.split} (n={self.n}): accuracy {self.accuracy:.2%}, macro-F1 {self.macro_f1:.3f}"
        if self.tta_accuracy is not None:
            s += f", with flip-TTA {self.tta_accuracy:.2%}"
        if self.extra.get("val_in_train"):
            s += " (a refit: these images were in its training data, so this is not a held-out figure)"
        clean = self.extra.get("without_train_copies")
        if clean:
            where = "its training data (train + val: a refit)" if clean.get("val_in_train") else "the training split"
            s += f"; {clean['accuracy']:.2%} on the {clean['n']} images without an exact copy in {where}"
        return s


def add_leakage_free(result: EvalResult, pred_ok: np.ndarray, x: np.ndarray, train_x: np.ndarray,
                     val_in_train: bool = False) -> EvalResult:
    """Add the accuracy on the images that have no pixel-identical copy in the training images ``train_x``
    (for a refit, ``val_in_train``: train + val, see :func:`training_images`)."""
    from .datasets import exact_copies_in

    copies = exact_copies_in(x, train_x)
    if copies.any() and not copies.all():
        result.extra["without_train_copies"] = {"n": int((~copies).sum()), "excluded": int(copies.sum()),
                                                "accuracy": float(pred_ok[~copies].mean()),
                                                **({"val_in_train": True} if val_in_train else {})}
    return result


def training_images(ds, meta) -> tuple[np.ndarray | None, bool]:
    """The images of ``ds`` that the model of ``meta`` was trained on, and whether val is among them.

    The train split, plus the val split for a refit (:attr:`ModelMetadata.trained_on_val`): a leakage-free
    figure must leave out the test images copied in either. ``None`` when the dataset has no train split.
    """
    if "train" not in ds.splits:
        return None, False
    if meta.trained_on_val and "val" in ds.splits:
        return ds.with_val_in_train()["train"].x, True
    return ds["train"].x, False


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def per_class_metrics(cm: np.ndarray, labels: list[str]) -> tuple[dict[str, dict[str, float]], float]:
    tp = np.diag(cm).astype(float)
    prec = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    per = {lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
           for lab, p, r, f, s in zip(labels, prec, rec, f1, cm.sum(1))}
    return per, float(f1.mean())


def metrics_from_probs(probs: np.ndarray, y: np.ndarray, labels: list[str], model: str = "", split: str = "test",
                       tta_probs: np.ndarray | None = None) -> EvalResult:
    pred = probs.argmax(1)
    cm = confusion_matrix(y, pred, len(labels))
    per, macro = per_class_metrics(cm, labels)
    tta = None if tta_probs is None else float(((probs + tta_probs).argmax(1) == y).mean())
    return EvalResult(model, split, int(len(y)), float((pred == y).mean()), macro, per, cm.tolist(), list(labels), tta)


def predict_file(model_path: str | Path, images: np.ndarray, batch: int = 64, flip: bool = False) -> tuple[np.ndarray, list[str]]:
    """Probabilities of a model file (.keras/.tflite/.onnx/.engine) for uint8 images (N, H, W[, C]) at any size."""
    from .predict import file_predictor, predict_images

    predict, labels = file_predictor(model_path)
    return predict_images(predict, images, batch, flip=flip), labels


def evaluate_file(model_path: str | Path, data: str | Path, split: str = "test", tta: bool = False,
                  limit: int | None = None) -> EvalResult:
    """Accuracy, macro-F1 and per-class figures of any model file on a dataset split."""
    from .metadata import read_metadata
    from .datasets import load_dataset

    meta = read_metadata(model_path)
    ds = load_dataset(data, meta.label_set)
    s = ds[split]
    x, y = (s.x[:limit], s.hard_labels[:limit]) if limit else (s.x, s.hard_labels)
    if list(ds.label_set.labels) != list(meta.labels):
        raise ValueError(f"{model_path}: model labels {meta.labels} differ from the dataset's {list(ds.label_set.labels)}")
    probs, labels = predict_file(model_path, x)
    tta_probs = predict_file(model_path, x, flip=True)[0] if tta else None
    res = metrics_from_probs(probs, y, labels, str(model_path), split, tta_probs)
    if split == "val" and meta.trained_on_val:
        res.extra["val_in_train"] = True  # a refit: these images were trained on, the figure is not held out
    elif split != "train":
        train_x, val_in_train = training_images(ds, meta)  # only here: a refit's train + val is a 32,000-image copy
        if train_x is not None:
            add_leakage_free(res, probs.argmax(1) == y, x, train_x, val_in_train)
    return res
