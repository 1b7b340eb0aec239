"""benchmarks.classifier_cost: the interleaved per-face cost that checks a model against a compute budget."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.classifier_cost import _resolve, markdown, measure


def test_interleaved_cost_reports_each_model_against_the_reference(fer_test):
    faces = fer_test[0][:4]
    default = _resolve("edge_cnn_fer7")  # a bundled name resolves to its int8 TFLite
    assert default.suffix == ".tflite" and default.is_file()
    res = measure([default, default], faces, [1, 4], rounds=3, calls=2)
    for b in ("1", "4"):
        ref, same = res["batches"][b]
        assert ref["x_reference"] == 1.0 and ref["x_reference_p10_p90"] == [1.0, 1.0]  # a round's ratio to itself
        assert ref["ms_per_face"] > 0 and np.isfinite(same["x_reference"]) and same["x_reference"] > 0
    table = markdown(res)
    assert table.count(f"`{default}`") == 4 and "| 4 |" in table
    with pytest.raises(ValueError, match="at least one model to compare"):
        measure([default], faces, [1], rounds=1)
    with pytest.raises(ValueError, match="batch 8 needs at least 8 faces"):
        measure([default, default], faces, [8], rounds=1)
