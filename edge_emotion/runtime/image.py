"""Frame validation and conversion. Frames follow the OpenCV convention: BGR, uint8, HxWx3.

Grayscale (HxW or HxWx1) and BGRA (HxWx4) frames are accepted and converted; anything
else raises :class:`~edge_emotion.errors.InputError` naming what was received.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

EXPECTED = "a BGR uint8 array of shape (H, W, 3); (H, W) / (H, W, 1) grayscale and (H, W, 4) BGRA are accepted"


def as_bgr(frame: object, what: str = "frame") -> np.ndarray:
    """Return ``frame`` as a C-contiguous BGR uint8 (H, W, 3) array, or raise :class:`InputError`."""
    import cv2

    if not isinstance(frame, np.ndarray):
        raise InputError(f"{what} must be a numpy array, got {type(frame).__name__}; expected {EXPECTED}")
    if frame.dtype != np.uint8:
        raise InputError(f"{what} has dtype {frame.dtype}; expected uint8 ({EXPECTED}). "
                         "Convert float images with (img * 255).clip(0, 255).astype(np.uint8)")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        if frame.size == 0:
            raise InputError(f"{what} is empty: shape {frame.shape}")
        return cv2.cvtColor(np.ascontiguousarray(frame.reshape(frame.shape[:2])), cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise InputError(f"{what} has shape {frame.shape}; expected {EXPECTED}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"{what} is empty: shape {frame.shape}")
    if frame.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(frame)


def read_image(path: str) -> np.ndarray:
    """Read an image file as BGR uint8; a clear error when it cannot be read."""
    import os

    import cv2

    if not os.path.isfile(path):
        raise InputError(f"{path}: image file not found")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot decode image (not an image, or a format OpenCV cannot read)")
    return img
