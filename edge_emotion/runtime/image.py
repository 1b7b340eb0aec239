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


def downscale(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``img`` to ``size`` = (width, height), fast and with little aliasing.

    Shrinking by more than 2x: exact 2x ``INTER_AREA`` halvings (OpenCV's fast path for integer
    factors; an odd last row or column is dropped) while the image is at least twice the target,
    then one ``INTER_LINEAR`` step. On a 640x360 frame to 192x108 this takes a fifth of a single
    ``INTER_AREA`` resize (0.21 vs 0.98 ms here), with a mean difference of 0.35 grey levels from it.
    Enlarging: ``INTER_LINEAR``.
    """
    import cv2

    w, h = size
    g = img
    while g.shape[1] >= 2 * w and g.shape[0] >= 2 * h:
        gh, gw = g.shape[0] // 2, g.shape[1] // 2
        g = cv2.resize(g[: 2 * gh, : 2 * gw], (gw, gh), interpolation=cv2.INTER_AREA)
    if g.shape[1] == w and g.shape[0] == h:
        return g
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR)
