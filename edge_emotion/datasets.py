"""Data loaders: FER-2013 (npz, Kaggle CSV, image folders), FER+ votes, EMOTIC annotations.

Every loader returns a :class:`Dataset`: named splits of uint8 images (N, H, W, C)
and targets that are class indices (single-label) or float vectors (soft labels,
multi-label), plus the :class:`LabelSet` that names the columns.

NumPy (and OpenCV for image folders) only: training, evaluation, the benchmark and int8
calibration all load data from here, and only training needs the ``train`` extra.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .labelsets import LabelSet, load_label_set
from .metadata import sha256_file

log = logging.getLogger(__name__)

__all__ = ["DATA_DIR", "DEFAULT_DATA", "DEFAULT_VIDEO", "exact_copies_in", "Split", "Dataset", "load_dataset", "load_fer2013_npz", "load_fer2013_csv", "load_image_folders",
           "load_ferplus", "ferplus_emotion_votes", "load_emotic_csv", "FERPLUS_TO_FER7"]

DATA_DIR = Path(os.environ.get("EDGE_EMOTION_DATA", "../shared/data"))
"""Where the datasets live: ``$EDGE_EMOTION_DATA``, else ``../shared/data`` (beside the project root,
run from the checkout). Every default below derives from it."""
DEFAULT_DATA = str(DATA_DIR / "fer2013.npz")
DEFAULT_VIDEO = str(DATA_DIR / "scenes" / "short_hamilton_clip.mp4")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
# Kaggle/official split names -> ours
SPLIT_ALIASES = {"training": "train", "publictest": "val", "privatetest": "test"}
# FER+ vote column order: neutral happiness surprise sadness anger disgust fear contempt unknown NF
FERPLUS_TO_FER7 = [6, 3, 5, 4, 0, 1, 2]


@dataclass
class Split:
    x: np.ndarray
    """uint8 images, (N, H, W, C)."""
    y: np.ndarray
    """(N,) int class indices, or (N, K) float32 targets (soft or multi-hot)."""

    def __post_init__(self) -> None:
        if self.x.ndim == 3:
            self.x = self.x[..., None]
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} images but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def hard_labels(self) -> np.ndarray:
        """Class index per sample (argmax of soft targets)."""
        return self.y if self.y.ndim == 1 else np.argmax(self.y, axis=1)

    def subset(self, idx: np.ndarray) -> "Split":
        return Split(self.x[idx], self.y[idx])


@dataclass
class Dataset:
    label_set: LabelSet
    splits: dict[str, Split]
    source: str
    sha256: str | None = None
    info: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> Split:
        if name not in self.splits:
            raise KeyError(f"dataset {self.source} has no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]

    def class_counts(self, split: str) -> np.ndarray:
        s = self[split]
        if s.y.ndim == 2 and self.label_set.multi_label:
            return (s.y > 0.5).sum(axis=0)
        return np.bincount(s.hard_labels, minlength=self.label_set.num_classes)

    def with_val_in_train(self) -> "Dataset":
        """A copy whose ``train`` split is train + val (a refit after the recipe was chosen on val).

        ``val`` stays as it is, so a run can still log it, but it is no longer held out: any
        figure on it measures images the model was trained on. ``test`` is untouched.
        """
        train, val = self["train"], self["val"]
        if train.y.ndim != val.y.ndim or train.x.shape[1:] != val.x.shape[1:]:
            raise ValueError(f"train and val of {self.source} differ in image shape or target kind: cannot merge them")
        merged = Split(np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]))
        return dataclasses.replace(self, splits={**self.splits, "train": merged},
                                   info={**self.info, "val_in_train": True, "train_images": len(train), "val_images": len(val)})


def exact_copies_in(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Boolean mask: which images of ``x`` have a pixel-identical copy in ``reference``.

    FER-2013 has 288 PrivateTest and 280 PublicTest images whose exact copy is in
    Training (see fer2013.json, quality_checks): a model can recall those rather than
    recognise them, so reports also give the accuracy without them.
    """
    seen = {hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest() for img in reference}
    return np.fromiter((hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest() in seen for img in x),
                       bool, count=len(x))


def load_fer2013_npz(path: str | Path, limit: int | None = None) -> Dataset:
    """The project's ``fer2013.npz``: official Training / PublicTest / PrivateTest as train / val / test."""
    path = Path(path)
    with np.load(path) as d:
        splits = {}
        for name in ("train", "val", "test"):
            x, y = d[f"x_{name}"], d[f"y_{name}"].astype(np.int64)
            if limit:
                x, y = x[:limit], y[:limit]
            splits[name] = Split(x, y)
    return Dataset(load_label_set("fer7"), splits, str(path), sha256_file(path))


def ferplus_emotion_votes(votes, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of an opened ``ferplus_labels.npz``: its vote counts (N, 10; the first 8 columns are the
    emotions in the ``ferplus8`` label set's order, then unknown and not-a-face) and which images have votes
    whose plurality is one of the 8 emotions (the others carry no usable label)."""
    counts = votes[f"votes_{split}"].astype(np.float32)
    emotions = len(load_label_set("ferplus8").labels)
    return counts, votes[f"has_votes_{split}"].astype(bool) & (np.argmax(counts, axis=1) < emotions)


def load_ferplus(fer_npz: str | Path, votes_npz: str | Path, mode: str = "majority", limit: int | None = None) -> Dataset:
    """FER+ 8-class labels for the FER-2013 images, row-aligned with ``fer2013.npz``.

    ``mode="majority"``: keep images whose top emotion has more than half of the votes
    (FER+'s own rule), target = that class. ``mode="soft"``: keep images whose plurality is
    one of the 8 emotions, target = the vote distribution over them.
    Images whose plurality is 'unknown' or 'not a face' are dropped in both modes.
    """
    if mode not in ("majority", "soft"):
        raise ValueError(f"FER+ mode must be 'majority' or 'soft', got {mode!r}")
    fer = load_fer2013_npz(fer_npz)
    votes_npz = Path(votes_npz)
    splits = {}
    with np.load(votes_npz) as v:
        for name, split in fer.splits.items():
            votes, keep = ferplus_emotion_votes(v, name)
            emo = votes[:, :8]
            if mode == "majority":
                keep &= emo.max(axis=1) > votes.sum(axis=1) / 2
                y = np.argmax(emo, axis=1).astype(np.int64)
            else:
                y = emo / np.maximum(emo.sum(axis=1, keepdims=True), 1)
            idx = np.flatnonzero(keep)
            if limit:
                idx = idx[:limit]
            splits[name] = Split(split.x[idx], y[idx])
    return Dataset(load_label_set("ferplus8"), splits, f"{fer_npz}+{votes_npz}", sha256_file(votes_npz),
                   info={"ferplus_mode": mode})


def load_fer2013_csv(path: str | Path, limit: int | None = None) -> Dataset:
    """Kaggle's ``fer2013.csv``: columns ``emotion,pixels,Usage``."""
    path = Path(path)
    xs: dict[str, list[np.ndarray]] = {}
    ys: dict[str, list[int]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"emotion", "pixels", "Usage"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected CSV columns {sorted(need)}, found {reader.fieldnames}")
        for row_no, row in enumerate(reader, start=2):
            pix = np.array(row["pixels"].split(), dtype=np.uint8)
            side = int(round(np.sqrt(pix.size)))
            if side * side != pix.size:
                raise ValueError(f"{path}:{row_no}: {pix.size} pixels is not a square image")
            split = SPLIT_ALIASES.get(row["Usage"].strip().lower(), row["Usage"].strip().lower())
            xs.setdefault(split, []).append(pix.reshape(side, side))
            ys.setdefault(split, []).append(int(row["emotion"]))
            if limit and row_no - 1 >= limit:
                break
    splits = {k: Split(np.stack(v), np.array(ys[k], dtype=np.int64)) for k, v in xs.items()}
    return Dataset(load_label_set("fer7"), splits, str(path), sha256_file(path))


def _read_gray(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"{path}: cannot decode image")
    if size and img.shape[:2] != size:
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img


def load_image_folders(root: str | Path, label_set: str | LabelSet = "fer7", size: tuple[int, int] = (48, 48),
                       val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Image-folder release: ``root/train/<class>/*`` and ``root/test/<class>/*``.

    Files in ``test/`` named ``PublicTest_*`` / ``PrivateTest_*`` go to val / test (the
    official split); when no file carries such a prefix, ``test/`` is the test split and
    ``val_fraction`` of train is held out as val, stratified by class.
    """
    root = Path(root)
    ls = load_label_set(label_set) if isinstance(label_set, str) else label_set
    index = {name.lower(): i for i, name in enumerate(ls.labels)}
    buckets: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for part in ("train", "test", "val"):
        d = root / part
        if not d.is_dir():
            continue
        for cls_dir in sorted(p for p in d.iterdir() if p.is_dir()):
            if cls_dir.name.lower() not in index:
                raise ValueError(f"{cls_dir}: folder name is not a label of {ls.name} ({', '.join(ls.labels)})")
            for f in sorted(cls_dir.iterdir()):
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                split = part
                prefix = f.name.split("_", 1)[0].lower()
                if prefix in SPLIT_ALIASES:
                    split = SPLIT_ALIASES[prefix]
                xs, ys = buckets.setdefault(split, ([], []))
                xs.append(_read_gray(f, size))
                ys.append(index[cls_dir.name.lower()])
    if "train" not in buckets:
        raise ValueError(f"{root}: no train/<class>/ images found")
    splits = {k: Split(np.stack(x), np.array(y, dtype=np.int64)) for k, (x, y) in buckets.items()}
    if "val" not in splits and val_fraction > 0:
        rng = np.random.default_rng(seed)
        tr = splits["train"]
        val_idx = np.concatenate([rng.permutation(np.flatnonzero(tr.y == c))[: max(1, int(round(val_fraction * (tr.y == c).sum())))]
                                  for c in np.unique(tr.y)])
        mask = np.zeros(len(tr), bool)
        mask[val_idx] = True
        splits["val"], splits["train"] = tr.subset(np.flatnonzero(mask)), tr.subset(np.flatnonzero(~mask))
    return Dataset(ls, splits, str(root))


def load_emotic_csv(csv_path: str | Path, image_root: str | Path, size: tuple[int, int] = (96, 96), split: str = "train") -> Dataset:
    """EMOTIC annotations in the widely used CSV export (one row per annotated person).

    Columns used: ``Folder``, ``Filename``, ``BBox`` (``[x1, y1, x2, y2]``) and
    ``Categorical_Labels`` (a list of EMOTIC category names). Each person's box is
    cropped, resized to ``size`` and converted to RGB; targets are multi-hot over the
    26 categories.
    """
    import cv2

    ls = load_label_set("emotic26")
    index = {name: i for i, name in enumerate(ls.labels)}
    xs, ys = [], []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"Folder", "Filename", "BBox", "Categorical_Labels"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: expected EMOTIC CSV columns {sorted(need)}, found {reader.fieldnames}")
        for row_no, row in enumerate(reader, start=2):
            img_path = Path(image_root) / row["Folder"] / row["Filename"]
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{csv_path}:{row_no}: cannot read image {img_path}")
            x1, y1, x2, y2 = (int(round(float(v))) for v in ast.literal_eval(row["BBox"]))
            h, w = img.shape[:2]
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if x2 <= x1 or y2 <= y1:
                raise ValueError(f"{csv_path}:{row_no}: empty box {row['BBox']} for a {w}x{h} image")
            crop = cv2.resize(img[y1:y2, x1:x2], (size[1], size[0]), interpolation=cv2.INTER_AREA)
            target = np.zeros(ls.num_classes, np.float32)
            for name in ast.literal_eval(row["Categorical_Labels"]):
                if name not in index:
                    raise ValueError(f"{csv_path}:{row_no}: {name!r} is not an EMOTIC category")
                target[index[name]] = 1.0
            xs.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
            ys.append(target)
    if not xs:
        raise ValueError(f"{csv_path}: no annotations")
    return Dataset(ls, {split: Split(np.stack(xs), np.stack(ys))}, str(csv_path), sha256_file(Path(csv_path)))


def load_dataset(path: str | Path, label_set: str = "fer7", ferplus_votes: str | Path | None = None,
                 ferplus_mode: str = "majority", limit: int | None = None) -> Dataset:
    """Open a dataset by path: ``.npz`` (FER-2013, or FER+ when ``label_set='ferplus8'``), Kaggle ``.csv``, or an image folder."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset {p} not found")
    if p.suffix == ".npz":
        if label_set == "ferplus8":
            votes = Path(ferplus_votes) if ferplus_votes else p.with_name("ferplus_labels.npz")
            return load_ferplus(p, votes, ferplus_mode, limit)
        return load_fer2013_npz(p, limit)
    if p.suffix == ".csv":
        return load_fer2013_csv(p, limit)
    if p.is_dir():
        return load_image_folders(p, label_set)
    raise ValueError(f"{p}: unsupported dataset; give a .npz, a Kaggle fer2013.csv or a folder with train/<class>/ images")
