"""High-resolution face detection: a pyramid of overlapping tiles, merged with one non-maximum suppression.

BlazeFace full-range sees a whole frame through a 192-pixel window, so in a 1,500-pixel photo a 60-pixel
face shrinks to 8 pixels and is lost. Here the frame is also cut into overlapping square tiles of
``tile`` pixels (then 2x, 4x ... that size, while smaller than the frame), each detected at the
network's resolution, and every detection goes into one weighted NMS with the whole-frame pass:

- a tile of ``tile`` pixels shows a face at ``192 / tile`` of its size (0.5 for 384-pixel tiles), which
  brings 30-pixel faces back above the detector's floor of about 14 input pixels;
- neighbouring tiles overlap by ``overlap`` of a tile, so every face up to that size lies wholly inside
  at least one tile; a detection touching a tile edge that is not the frame's edge is a cut face and is
  dropped, and so is one larger than the overlap (the next, coarser level sees it whole);
- the whole-frame pass finds the faces larger than any tile's overlap; the pyramid stops at the first
  level whose overlap reaches the smallest face the whole-frame pass finds.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .base import FaceBox

Region = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]  # spread evenly, the last one at the edge


def tile_levels(width: int, height: int, tile: int = 384, overlap: float = 1 / 3,
                up_to: float | None = None) -> list[tuple[int, list[Region]]]:
    """The pyramid: ``[(tile_size, [regions])]`` for tile sizes ``tile``, ``2 * tile``, ... below the frame's long
    side, stopping after the first level whose tiles see faces of ``up_to`` pixels whole (``size * overlap >=
    up_to``; default: no limit). Regions overlap by at least ``overlap`` of a tile and are clipped to the frame."""
    if tile < 16 or not 0 < overlap < 1:
        raise ValueError(f"tile must be >= 16 pixels and overlap in (0, 1), got {tile} and {overlap}")
    levels = []
    size = tile
    while size < max(width, height):
        step = max(1, int(size * (1 - overlap)))
        regions = [(x, y, min(width, x + size), min(height, y + size))
                   for y in _starts(height, size, step) for x in _starts(width, size, step)]
        levels.append((size, regions))
        if up_to is not None and size * overlap >= up_to:
            break
        size *= 2
    return levels


def keep_whole(faces: Sequence[FaceBox], region: Region, frame_wh: tuple[int, int], max_side: float,
               edge: float) -> list[FaceBox]:
    """The faces of a tile that are neither cut by one of its inner edges (within ``edge`` pixels of an edge
    that is not the frame's) nor larger than ``max_side`` (a coarser level sees those whole)."""
    x0, y0, x1, y1 = region
    fw, fh = frame_wh
    out = []
    for f in faces:
        if max(f.w, f.h) > max_side:
            continue
        if (x0 > 0 and f.x < x0 + edge) or (y0 > 0 and f.y < y0 + edge):
            continue
        if (x1 < fw and f.x + f.w > x1 - edge) or (y1 < fh and f.y + f.h > y1 - edge):
            continue
        out.append(f)
    return out


def merge(faces: Sequence[FaceBox], nms: Callable, threshold: float) -> list[FaceBox]:
    """One weighted NMS over detections from several passes (``nms`` as :func:`.blazeface.weighted_nms`)."""
    if not faces:
        return []
    boxes = np.array([[f.x, f.y, f.w, f.h] for f in faces], np.float64)
    scores = np.array([f.score for f in faces], np.float64)
    kps = np.stack([f.landmarks if f.landmarks is not None else np.zeros((6, 2)) for f in faces]).astype(np.float64)
    return [FaceBox(float(b[0]), float(b[1]), float(b[2]), float(b[3]), s, k) for b, s, k in nms(boxes, scores, kps, threshold)]


def detect_tiled(detect_region: Callable[[np.ndarray, Region], list[FaceBox]], frame: np.ndarray, nms: Callable,
                 nms_threshold: float, tile: int = 384, overlap: float = 1 / 3, whole_frame_floor: float = 0.0) -> list[FaceBox]:
    """Faces in ``frame`` from the whole-frame pass plus the tile pyramid, merged (best first).

    ``whole_frame_floor``: the smallest face (frame pixels) the whole-frame pass finds; the pyramid stops at
    the first level that sees faces of that size whole."""
    h, w = frame.shape[:2]
    found = list(detect_region(frame, (0, 0, w, h)))
    for size, regions in tile_levels(w, h, tile, overlap, up_to=whole_frame_floor or None):
        for region in regions:
            found += keep_whole(detect_region(frame, region), region, (w, h), size * overlap, 0.01 * size)
    return merge(found, nms, nms_threshold)
