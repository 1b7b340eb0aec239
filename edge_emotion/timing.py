"""Timing statistics shared by ``edge-emotion benchmark`` and ``edge-emotion doctor``, so both report the same way."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

__all__ = ["percentile_ms", "time_calls"]


def percentile_ms(seconds: list[float], q: float) -> float:
    """The ``q``-th percentile of call times given in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(seconds, np.float64) * 1000, q))


def time_calls(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Wall time of ``repeats`` calls of ``fn`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts
