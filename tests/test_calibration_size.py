"""benchmarks.calibration_size: the int8 calibration sweep that backs the exporter's calibration set size."""

from __future__ import annotations

import pytest

from benchmarks.calibration_size import markdown, sweep


def test_sweep_exports_one_int8_artifact_per_calibration_set_and_scores_it(default_keras, fer_npz):
    res = sweep(default_keras, [16], [0, 1], fer_npz, split="val", limit=200)
    assert res["n"] == 200 and 0.4 < res["fp32_accuracy"] <= 1
    assert [(r["images"], r["seed"]) for r in res["rows"]] == [(16, 0), (16, 1)]  # the size asked for, as exported
    assert res["rows"][0]["mean_prob_diff"] != res["rows"][1]["mean_prob_diff"]  # two draws, two calibrations
    for r in res["rows"]:
        assert 0.4 < r["accuracy"] <= 1
        assert r["agreement"] > 0.9  # a real model, fully int8, still agrees with its fp32 graph on most faces
        assert 0 < r["mean_prob_diff"] < 0.05
    table = markdown(res)
    assert "| 16 | 0 |" in table and "| 16 | 1 |" in table and "fp32" in table
    with pytest.raises(ValueError, match="calibration size"):
        sweep(default_keras, [], [0], fer_npz)
