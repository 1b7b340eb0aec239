"""The backend interface: ``load(path)`` plus ``infer(batch) -> outputs``."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ...errors import ModelError
from ...formats import format_for_path, has_magic

log = logging.getLogger(__name__)


class Backend(ABC):
    """A loaded model on one runtime.

    ``infer`` takes a float32 NHWC batch already normalised per the model's metadata
    and returns the model's outputs as float32 arrays, in the model's output order.
    Quantised models quantise the input and dequantise the outputs inside ``infer``,
    so callers never see int8.
    """

    name: str = "base"
    path: Path

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, threads: int | None = None, providers: list | None = None) -> "Backend":
        """Open a model file."""

    @abstractmethod
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the model on a batch (N, H, W, C) float32."""

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int | None, ...]:
        """Model input shape (N may be None/-1 for dynamic batch)."""

    @property
    def precision(self) -> str:
        return "fp32"

    def version(self) -> str:
        return "unknown"

    def close(self) -> None:
        """Release what the runtime holds outside Python's memory (GPU buffers, streams). Idempotent;
        a no-op for CPU runtimes, whose memory the garbage collector frees."""

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        if not isinstance(batch, np.ndarray) or batch.ndim != 4:
            raise ValueError(f"{self.path.name}: batch must be a 4-D NHWC array, got {getattr(batch, 'shape', type(batch))}")
        want = tuple(self.input_shape[1:])
        if tuple(batch.shape[1:]) != want:
            raise ValueError(f"{self.path.name}: batch has per-sample shape {batch.shape[1:]}, the model expects {want}")
        return np.ascontiguousarray(batch, dtype=np.float32)


def check_file(path: str | Path, kind: str = "model") -> Path:
    """Fail early with a readable message for a missing, empty or wrong-type model file.

    The header bytes every file of the format has come from the format table (:mod:`edge_emotion.formats`)."""
    p = Path(path)
    fmt = format_for_path(p)
    if not p.is_file():
        raise ModelError(f"{p}: {kind} file not found")
    size = p.stat().st_size
    if size == 0:
        raise ModelError(f"{p}: {kind} file is empty (an interrupted copy?)")
    if fmt.magic is not None:
        with open(p, "rb") as f:
            head = f.read(fmt.magic_offset + len(fmt.magic))
        if not has_magic(fmt, head):
            raise ModelError(f"{p}: not a {kind} file (expected {fmt.magic!r} at byte {fmt.magic_offset}, found "
                             f"{head[fmt.magic_offset:]!r}); the file is damaged or has the wrong suffix")
    return p
