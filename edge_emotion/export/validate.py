"""Validation of an exported artifact against the Keras model it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class ValidationReport:
    artifact: str
    n: int
    agreement: float
    """Fraction of images where the artifact's top-1 equals the Keras model's."""
    max_prob_diff: float
    mean_prob_diff: float
    accuracy_artifact: float | None
    accuracy_source: float | None
    threshold: float
    passed: bool
    predicted_classes: int
    """How many distinct classes the artifact predicts (a collapsed export predicts few)."""

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        acc = "" if self.accuracy_artifact is None else f", accuracy {self.accuracy_artifact:.2%} (source {self.accuracy_source:.2%})"
        return (f"agreement {self.agreement:.2%} on {self.n} images (threshold {self.threshold:.2%}), "
                f"max |dp| {self.max_prob_diff:.3f}{acc}: {'PASS' if self.passed else 'FAIL'}")



def compare(artifact: Path, source_probs: np.ndarray, artifact_probs: np.ndarray, labels: np.ndarray | None,
            threshold: float) -> ValidationReport:
    a, b = np.argmax(source_probs, 1), np.argmax(artifact_probs, 1)
    diff = np.abs(source_probs - artifact_probs)
    agreement = float((a == b).mean())
    return ValidationReport(
        artifact=Path(artifact).name, n=len(a), agreement=agreement, max_prob_diff=float(diff.max()),
        mean_prob_diff=float(diff.mean()),
        accuracy_artifact=None if labels is None else float((b == labels).mean()),
        accuracy_source=None if labels is None else float((a == labels).mean()),
        threshold=threshold, passed=agreement >= threshold, predicted_classes=int(len(np.unique(b))),
    )
