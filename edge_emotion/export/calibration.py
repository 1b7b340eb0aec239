"""Calibration images for int8 quantisation: real training images drawn evenly across classes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..preprocessing import Preprocessing

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_IMAGES = 2000


def balanced_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices spread evenly over the classes (rare classes give what they have, the rest fill up)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = int(np.ceil(n / len(classes)))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per] for c in classes]
    idx = np.concatenate(chosen)
    if len(idx) < n:  # top up from the rest
        rest = np.setdiff1d(np.arange(len(labels)), idx)
        idx = np.concatenate([idx, rng.permutation(rest)[: n - len(idx)]])
    return rng.permutation(idx)[:n]


def calibration_images(source: str | Path, n: int = DEFAULT_CALIBRATION_IMAGES, split: str = "train", seed: int = 0,
                       preprocessing: Preprocessing | None = None) -> np.ndarray:
    """uint8 images (n, H, W, C) from a dataset (npz/csv/folder) or a folder of face images.

    Face images in a plain folder are resized to the model's input by ``preprocessing``
    (default: 48x48) and kept as RGB; the exporter's preprocessing converts the colour.
    """
    source = Path(source)
    if source.is_dir() and not (source / "train").is_dir():
        import cv2

        prep = preprocessing or Preprocessing((48, 48), "gray")
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"})[:n]
        if not files:
            raise ValueError(f"{source}: no calibration images found")
        imgs = []
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{f}: cannot decode this calibration image")
            imgs.append(cv2.cvtColor(prep.resize_crop(img), cv2.COLOR_BGR2RGB))
        return np.stack(imgs)
    from ..datasets import load_dataset

    ds = load_dataset(source)
    s = ds[split]
    idx = balanced_indices(s.hard_labels, min(n, len(s)), seed)
    counts = np.bincount(s.hard_labels[idx], minlength=ds.label_set.num_classes)
    log.info("calibration: %d %s images from %s, per class %s", len(idx), split, source, counts.tolist())
    return s.x[idx]
