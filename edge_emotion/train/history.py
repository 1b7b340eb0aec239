"""A run's ``history.csv`` (one row per finished epoch, every session of a resumed run): what it says."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["best_so_far", "epochs_done", "epoch_seconds", "logs_epoch_seconds"]


def best_so_far(history_csv: Path, monitor: str) -> float | None:
    if not history_csv.exists():
        return None
    with open(history_csv) as f:
        vals = [float(r[monitor]) for r in csv.DictReader(f) if r.get(monitor)]
    return max(vals) if vals else None


def epochs_done(history_csv: Path) -> int:
    if not history_csv.exists():
        return 0
    with open(history_csv) as f:
        return sum(1 for _ in csv.DictReader(f))


def epoch_seconds(history_csv: Path) -> float | None:
    """Total training time from the ``epoch_seconds`` column of ``history.csv`` (None if not logged)."""
    if not history_csv.exists():
        return None
    with open(history_csv) as f:
        vals = [r.get("epoch_seconds") for r in csv.DictReader(f)]
    if not vals or any(not v for v in vals):
        return None
    return float(sum(float(v) for v in vals))


def logs_epoch_seconds(history_csv: Path) -> bool:
    """Whether this run logs epoch times: yes for a new run, and a resumed one keeps its log's columns."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return True
    with open(history_csv) as f:
        return "epoch_seconds" in f.readline().strip().split(",")
