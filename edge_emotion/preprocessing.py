"""The one definition of how a face becomes a model input, shared by training, export and the runtime.

A :class:`Preprocessing` is built from a model's metadata (or, while training, from the
model's input shape) and holds every parameter of the transform:

1. **framing** (``crop_margin``, ``crop_shift_y``): the square cut around a detected face box,
   so that runtime crops are framed like the training faces (:meth:`Preprocessing.crop`);
2. **resize** to ``input_size``: ``"bilinear"`` interpolates (the default: what the runtime's
   crops have always done, and what measured best, see ``benchmarks/crop_resampling.py``);
   ``"area"`` averages the covered pixels when shrinking (no aliasing from large faces) and
   interpolates bilinearly when enlarging;
3. **colour**: ``"gray"`` (ITU-R BT.601 luma) or ``"rgb"``;
4. **normalisation**: ``(p - mean) / std`` on pixel values 0..255, float32, NHWC.

Two implementations read these parameters: :meth:`Preprocessing.batch` (NumPy/OpenCV; the
runtime, no TensorFlow) and :meth:`Preprocessing.tf_batch` (TensorFlow ops inside
``tf.data`` while training and when an export is validated). ``tests/test_preprocessing.py``
checks that both give the same tensor for the same crop within :data:`AGREEMENT_TOLERANCE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .metadata import ModelMetadata

__all__ = ["Preprocessing", "RESIZE_METHODS", "AGREEMENT_TOLERANCE", "DEFAULT_CROP_MARGIN", "DEFAULT_CROP_SHIFT_Y"]

RESIZE_METHODS = ("bilinear", "area")
"""``bilinear``: bilinear both ways; ``area``: pixel-area average when shrinking, bilinear when enlarging."""

DEFAULT_CROP_MARGIN = 0.08
DEFAULT_CROP_SHIFT_Y = -0.09
"""Framing measured to match FER-2013's faces (see the README's crop section)."""

AGREEMENT_TOLERANCE = {"max_abs": 1.5, "mean_abs": 0.35}
"""How far the OpenCV and TensorFlow paths may differ, in pixel levels (0..255) before
normalisation: both compute the same transform, OpenCV in uint8 (it rounds after the resize
and after the colour conversion), TensorFlow in float32."""


@dataclass(frozen=True)
class Preprocessing:
    """Every parameter of the face -> model-input transform (see the module docstring)."""

    input_size: tuple[int, int]
    color: str = "gray"
    mean: float = 0.0
    std: float = 1.0
    resize: str = "bilinear"
    crop_margin: float = DEFAULT_CROP_MARGIN
    crop_shift_y: float = DEFAULT_CROP_SHIFT_Y

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input_size must be (height, width) with positive sides, got {self.input_size}")
        if self.color not in ("gray", "rgb"):
            raise ValueError(f"color must be 'gray' or 'rgb', got {self.color!r}")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got {self.resize!r}")
        if not self.std:
            raise ValueError("std must be non-zero")

    # ------------------------------------------------------------ construction
    @classmethod
    def from_metadata(cls, meta: "ModelMetadata") -> "Preprocessing":
        return cls(tuple(meta.input_size), meta.color, float(meta.mean), float(meta.std), meta.resize,
                   float(meta.crop_margin), float(meta.crop_shift_y))

    @classmethod
    def for_input_shape(cls, input_shape: tuple[int, ...], **kwargs: Any) -> "Preprocessing":
        """For a model input shape ``(H, W, C)`` (C = 1: gray, 3: RGB), the other parameters at their defaults."""
        h, w, c = (int(v) for v in input_shape[-3:])
        if c not in (1, 3):
            raise ValueError(f"a model input has 1 (gray) or 3 (RGB) channels, got shape {tuple(input_shape)}")
        return cls((h, w), "gray" if c == 1 else "rgb", **kwargs)

    def metadata_fields(self) -> dict[str, Any]:
        """The :class:`~edge_emotion.metadata.ModelMetadata` fields that carry this transform."""
        return {"input_size": tuple(self.input_size), "color": self.color, "mean": self.mean, "std": self.std,
                "resize": self.resize, "crop_margin": self.crop_margin, "crop_shift_y": self.crop_shift_y}

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-sample model input shape, HWC."""
        return (self.input_size[0], self.input_size[1], self.channels)

    # ------------------------------------------------------------ OpenCV (runtime)
    def crop(self, frame: np.ndarray, box: tuple[float, float, float, float], landmarks: np.ndarray | None = None,
             align: bool = False, margin: float | None = None, shift_y: float | None = None) -> np.ndarray:
        """The face in ``box`` (x, y, w, h) of a BGR frame, framed and resized to ``input_size`` (uint8)."""
        from .runtime.crop import crop_face

        return crop_face(frame, box, self.input_size, self.crop_margin if margin is None else margin, landmarks, align,
                         self.crop_shift_y if shift_y is None else shift_y, antialias=self.resize == "area")

    def resize_crop(self, crop: np.ndarray) -> np.ndarray:
        """One uint8 crop of any size -> ``input_size`` by this transform's resize method."""
        import cv2

        h, w = self.input_size
        if crop.shape[:2] == (h, w):
            return crop
        shrink = crop.shape[0] > h or crop.shape[1] > w
        flag = cv2.INTER_AREA if (shrink and self.resize == "area") else cv2.INTER_LINEAR
        return cv2.resize(crop, (w, h), interpolation=flag)

    def batch(self, crops: list[np.ndarray] | np.ndarray, order: str = "bgr") -> np.ndarray:
        """uint8 crops (any size; gray HxW / HxWx1, or 3-channel in ``order``) -> float32 NHWC model input.

        ``order`` is the channel order of 3-channel crops: ``"bgr"`` (OpenCV frames, the
        runtime) or ``"rgb"`` (datasets).
        """
        import cv2

        if order not in ("bgr", "rgb"):
            raise ValueError(f"order must be 'bgr' or 'rgb', got {order!r}")
        h, w = self.input_size
        out = np.empty((len(crops), h, w, self.channels), np.float32)
        for i, c in enumerate(crops):
            c = np.asarray(c)
            if c.dtype != np.uint8:
                raise InputError(f"face crop {i} has dtype {c.dtype}; crops are uint8 images (0..255)")
            if c.ndim == 3 and c.shape[2] == 1:
                c = c[..., 0]
            if c.ndim not in (2, 3) or (c.ndim == 3 and c.shape[2] != 3) or min(c.shape[:2]) < 1:
                raise InputError(f"face crop {i} has shape {c.shape}; expected HxW gray or HxWx3 colour with non-zero sides")
            c = self.resize_crop(c)
            if self.color == "gray":
                out[i, ..., 0] = c if c.ndim == 2 else cv2.cvtColor(c, cv2.COLOR_BGR2GRAY if order == "bgr" else cv2.COLOR_RGB2GRAY)
            elif c.ndim == 2:
                out[i] = c[..., None]
            else:
                out[i] = c[..., ::-1] if order == "bgr" else c
        if self.mean != 0.0 or self.std != 1.0:
            out = (out - self.mean) / self.std
        return out

    # ------------------------------------------------------------ TensorFlow (training, export validation)
    def tf_batch(self, images: Any) -> Any:
        """TensorFlow op: uint8/float images (N, H, W, 1|3; RGB) -> float32 model input, the same transform as :meth:`batch`."""
        import tensorflow as tf

        x = tf.cast(images, tf.float32)
        h, w = self.input_size
        if x.shape[1] != h or x.shape[2] != w:
            shrink = (x.shape[1] or 0) > h or (x.shape[2] or 0) > w
            method = "area" if (shrink and self.resize == "area") else "bilinear"
            x = tf.image.resize(x, (h, w), method=method)
        if x.shape[-1] == 1 and self.channels == 3:
            x = tf.repeat(x, 3, axis=-1)
        elif x.shape[-1] == 3 and self.channels == 1:
            x = tf.image.rgb_to_grayscale(x)
        if self.mean != 0.0 or self.std != 1.0:
            x = (x - self.mean) / self.std
        return x
