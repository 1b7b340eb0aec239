"""benchmarks.compare: a latency baseline is only compared on the same machine class."""

from __future__ import annotations

import json

from benchmarks.compare import machine_class, main


def _run(path, cpu: dict, medians: dict[str, float], models: dict[str, str] | None = None) -> str:
    models = models or {}
    path.write_text(json.dumps({"machine_info": {"cpu": cpu}, "benchmarks": [
        {"fullname": k, "stats": {"median": v}, "extra_info": {"sha256": models[k]} if k in models else {}}
        for k, v in medians.items()]}))
    return str(path)


VNNI = {"brand_raw": "AMD EPYC", "family": 26, "model": 2, "count": 2, "flags": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]}
AVX2 = {"brand_raw": "AMD EPYC", "family": 25, "model": 1, "count": 2, "flags": ["avx", "avx2", "fma"]}


def test_same_brand_string_but_other_simd_features_is_another_machine(tmp_path, capsys):
    assert machine_class({"cpu": VNNI}) != machine_class({"cpu": AVX2})
    base = _run(tmp_path / "b.json", VNNI, {"classify": 0.0002})
    cur = _run(tmp_path / "c.json", AVX2, {"classify": 0.0015})
    assert main([base, cur]) == 2  # not reported as a 650 % regression
    assert "another machine class" in capsys.readouterr().err
    assert main([base, cur, "--any-machine"]) == 1


def test_regression_threshold_on_the_same_machine(tmp_path):
    base = _run(tmp_path / "b.json", AVX2, {"classify": 1.0e-3, "detect": 2.0e-3})
    assert main([base, _run(tmp_path / "ok.json", AVX2, {"classify": 1.2e-3, "detect": 1.9e-3})]) == 0
    assert main([base, _run(tmp_path / "slow.json", AVX2, {"classify": 1.3e-3, "detect": 2.0e-3})]) == 1


def test_another_model_file_is_not_reported_as_a_code_regression(tmp_path, capsys):
    base = _run(tmp_path / "b.json", AVX2, {"classify": 1.0e-3, "detect": 2.0e-3}, {"classify": "aa" * 32})
    # the same model: a 40 % slow-down is a regression
    assert main([base, _run(tmp_path / "slow.json", AVX2, {"classify": 1.4e-3, "detect": 2.0e-3}, {"classify": "aa" * 32})]) == 1
    # another model file, 40 % slower: reported as a model change, with what to do
    other = _run(tmp_path / "new.json", AVX2, {"classify": 1.4e-3, "detect": 2.0e-3}, {"classify": "bb" * 32})
    assert main([base, other]) == 3
    out = capsys.readouterr()
    assert "MODEL    classify" in out.out and "record a new baseline" in out.err
    # a real regression elsewhere still fails as a regression
    assert main([base, _run(tmp_path / "both.json", AVX2, {"classify": 1.4e-3, "detect": 3.0e-3}, {"classify": "bb" * 32})]) == 1
