"""What a classifier costs per face, relative to a reference: the check behind a model's compute budget.

Issue #14 allows the default at most 2x the per-face classifier cost of the model it was filed against. A VM's speed
drifts by tens of percent within an hour, so timing candidates one after another can put that drift into the ratio.
This benchmark loads every model once and runs them **interleaved**: each round times each model on the same real
PrivateTest faces (``EmotionClassifier.predict``, the runtime's own path, preprocessing excluded), and the ratio is
taken within each round, so a slow spell slows every model in it alike. It reports, per batch size, the median
per-face time and the median of the per-round ratios to the first model, with their spread (10th-90th percentile).

    python -m benchmarks.classifier_cost REFERENCE MODEL [MODEL ...] [--batches 1 8] [--rounds 60] [--json OUT]

A model is a file (any format the runtime loads) or a bundled name (``edge_cnn_fer7``: its int8 TFLite).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.conftest import SHARED


def _resolve(model: str) -> Path:
    from edge_emotion.runtime.zoo import resolve_model

    return Path(resolve_model(model, "litert"))


def measure(models: list[Path], faces: np.ndarray, batches: list[int], rounds: int, calls: int = 20,
            threads: int = 2) -> dict:
    """Interleaved per-face timing of ``models`` on ``faces`` (uint8 gray crops); ratios against ``models[0]``."""
    from edge_emotion.runtime.classifier import EmotionClassifier

    if len(models) < 2:
        raise ValueError("give a reference model and at least one model to compare with it")
    clfs = [EmotionClassifier(m, threads=threads) for m in models]
    out: dict = {"models": [str(m) for m in models], "rounds": rounds, "calls_per_round": calls, "threads": threads,
                 "batches": {}}
    for b in batches:
        if b > len(faces):
            raise ValueError(f"batch {b} needs at least {b} faces, got {len(faces)}")
        inputs = [c.preprocessing.batch(faces[:b, :, :, None], order="rgb") for c in clfs]
        for c, x in zip(clfs, inputs):  # warm-up: allocation for this batch size, caches
            for _ in range(5):
                c.predict(x)
        per_face = np.zeros((rounds, len(clfs)))
        for r in range(rounds):
            for i, (c, x) in enumerate(zip(clfs, inputs)):
                t = time.perf_counter()
                for _ in range(calls):
                    c.predict(x)
                per_face[r, i] = (time.perf_counter() - t) / calls / b * 1e3
        ratio = per_face / per_face[:, :1]
        out["batches"][str(b)] = [
            {"model": str(m), "ms_per_face": round(float(np.median(per_face[:, i])), 4),
             "x_reference": round(float(np.median(ratio[:, i])), 3),
             "x_reference_p10_p90": [round(float(v), 3) for v in np.percentile(ratio[:, i], [10, 90])]}
            for i, m in enumerate(models)]
    return out


def markdown(res: dict) -> str:
    lines = [f"Per-face classifier time, {res['rounds']} interleaved rounds of {res['calls_per_round']} calls, "
             f"{res['threads']} threads; `x reference`: median over rounds of each round's ratio to the first model.", "",
             "| model | batch | ms per face | x reference | 10th-90th pct |", "|---|---:|---:|---:|---|"]
    for b, rows in res["batches"].items():
        for row in rows:
            lo, hi = row["x_reference_p10_p90"]
            lines.append(f"| `{row['model']}` | {b} | {row['ms_per_face']:.3f} | {row['x_reference']:.2f} | {lo:.2f}-{hi:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="reference first, then the models to compare with it")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=60, help="interleaved rounds (default: %(default)s)")
    p.add_argument("--calls", type=int, default=20, help="timed calls per model per round (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the result as JSON")
    a = p.parse_args(argv)
    with np.load(SHARED / "fer2013.npz") as d:
        faces = d["x_test"][: max(a.batches)]
    res = measure([_resolve(m) for m in a.models], faces, a.batches, a.rounds, a.calls, a.threads)
    print(markdown(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
