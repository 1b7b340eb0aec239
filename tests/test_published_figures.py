"""Published figures describe the models that ship.

Every figure in ``benchmarks/results/`` and in the README was measured on some model file. When a bundled
model changes, its figures must be measured again: a number from an earlier model is a defect. Each
benchmark records the SHA-256 of the classifier it ran (``edge_emotion.runtime.zoo.measured_file``); these
tests compare those with ``models/index.json``, and the README's tables and quoted figures with the results
they were copied from. A failure names the command that re-measures the figure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = (ROOT / "README.md").read_text()
INDEX = json.loads((ROOT / "edge_emotion" / "models" / "index.json").read_text())
PACKAGE_MODELS = ROOT / "edge_emotion" / "models"


def _result(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _artifact(model: str, key: str) -> dict:
    entry = INDEX["models"][model]
    return entry["keras"] if key == "keras" else entry["artifacts"][key]


def _default_int8_sha() -> str:
    return _artifact(INDEX["default"], "tflite_int8")["sha256"]


def _section(text: str, heading: str) -> str:
    """The text under a Markdown heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1:]
    nxt = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: nxt.start()] if nxt else rest


def _table(text: str, first_cell: str) -> list[dict[str, str]]:
    """The body rows of the first Markdown table whose header starts with ``| first_cell |``, each a dict from the
    header's cells to the row's (stripped)."""
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    header, rows = cells(lines[start]), []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, cells(line))))
    return rows


def _key(row: dict) -> str:
    return "keras" if row["format"] == "keras" else f"{row['format']}_{row['precision']}"


def test_benchmark_table_measured_the_files_that_ship():
    rows = [r for r in _result("benchmark.json")["rows"] if r.get("status") == "ok"]
    assert rows, "benchmark.json has no measured row"
    measured = set()
    for r in rows:
        model = Path(r["file"]).parent.name
        art = _artifact(model, _key(r))
        assert r.get("sha256") == art["sha256"], (
            f"benchmark.json's {model} {_key(r)} row was measured on another file than the one bundled now: "
            "re-run `make benchmark`")
        measured.add((model, art["file"] if "file" in art else "model.keras"))
    shipped = {(p.parent.name, p.name) for p in PACKAGE_MODELS.glob("*/*") if p.suffix in (".tflite", ".onnx")}
    assert shipped, "no packaged model files found"
    assert shipped <= measured, f"packaged artifacts with no benchmark row: {sorted(shipped - measured)}"


@pytest.mark.parametrize("where", [("benchmark.json", "long_run"), ("face_detection.json", None),
                                   ("alignment.json", None), ("crop_resampling.json", None)])
def test_results_that_run_the_default_ran_the_shipped_default(where):
    name, part = where
    res = _result(name)
    rec = (res[part] if part else res).get("classifier")
    assert rec, f"{name} does not record which classifier it ran: re-run it with the current benchmark code"
    command = "make benchmark" if name == "benchmark.json" else f"python -m benchmarks.{name.removesuffix('.json')}"
    assert rec["sha256"] == _default_int8_sha(), (
        f"{name} was measured with {rec['file']} {rec['sha256'][:12]}..., not the bundled default: re-run `{command}` "
        "and update the README's figures from it")


def test_latency_baseline_was_recorded_on_the_shipped_files():
    benches = json.loads((ROOT / "benchmarks" / "baseline" / "baseline.json").read_text())["benchmarks"]
    default = INDEX["default"]
    recorded = {b["name"]: b["extra_info"] for b in benches if "sha256" in b.get("extra_info", {})}
    assert "test_detect_sample_image" in recorded, "baseline.json does not record which model detect() ran"
    for name, info in recorded.items():
        want = _artifact(default, info.get("artifact", "tflite_int8"))["sha256"]
        assert info["sha256"] == want, (
            f"benchmarks/baseline/baseline.json's {name} ran {info['file']} {info['sha256'][:12]}..., not the shipped "
            "file: record a new baseline (pytest benchmarks/ --benchmark-json benchmarks/baseline/baseline.json)")


def test_readme_benchmark_table_is_the_committed_result():
    md = (RESULTS / "benchmark.md").read_text()
    readme = _table(_section(README, "## Benchmarks"), "model")
    assert readme == _table(md, "model"), (
        "the README's benchmark table differs from benchmarks/results/benchmark.md: copy the table from it")


def _pct(cell: str) -> float | None:
    m = re.search(r"(\d+\.\d+) %", cell)
    return float(m.group(1)) if m else None


def test_readme_bundled_models_table_matches_the_index():
    rows = _table(_section(README, "### Bundled models"), "model")
    columns = {"int8 TFLite (CPU default)": "tflite_int8", "int8 ONNX": "onnx_int8", "fp16 ONNX": "onnx_fp16"}
    seen = set()
    for row in rows:
        model = re.search(r"`([^`]+)`", row["model"]).group(1)
        entry = INDEX["models"][model]
        seen.add(model)
        keras_col = "Keras fp32, flip-averaged" if entry.get("flip_average") else "Keras fp32, one pass"
        for col, key in {**columns, keras_col: "keras"}.items():
            got = _pct(row[col])
            if key != "keras" and key not in entry["artifacts"]:
                assert got is None, f"README gives {model} a {col} figure, but no such artifact is bundled"
                continue
            want = round(100 * _artifact(model, key)["test_accuracy"], 2)
            assert got == want, f"README: {model} {col} is {got} %, models/index.json says {want} %"
    assert seen == set(INDEX["models"]), f"models missing from the README's table: {set(INDEX['models']) - seen}"
    default_int8 = _artifact(INDEX["default"], "tflite_int8")
    assert f"{100 * default_int8['agreement_with_keras']:.2f} %" in _section(README, "### Bundled models"), (
        "re-quote the default int8 TFLite's agreement with Keras (models/index.json) in the README's Bundled models")


def test_readme_face_detection_speed_table_is_the_committed_result():
    res = _result("face_detection.json")
    # the README orders and names the configurations its own way: compare the figures each row carries
    readme = sorted((float(r["detect() FPS"]), float(r["× before"].strip("*")), int(r["clip faces"]), r["pascal_voc_faces"])
                    for r in _table(README, "config"))
    results = sorted((round(r["fps"], 1), round(r["speedup"], 2), r["clip_faces"], f"{r['recall_found']}/{r['recall_total']}")
                     for r in res["rows"])
    assert readme == results, ("the README's face-detection speed table (FPS, x before, clip faces, pascal_voc_faces) "
                               "differs from benchmarks/results/face_detection.json: copy the figures from it")


def test_readme_quotes_the_current_alignment_crop_and_long_run_figures():
    al = _result("alignment.json")
    assert (f"scores {100 * al['accuracy_plain']:.2f} % without alignment and "
            f"{100 * al['accuracy_aligned']:.2f} % with it") in README, "re-quote alignment.json in the README"
    fr = al.get("framing")
    assert fr, "alignment.json has no framing comparison: re-run `python -m benchmarks.alignment`"
    assert (f"{fr['faces_found_by_both']:,} PrivateTest faces both detectors find" in README
            and f"scores {100 * fr['accuracy_blazeface']:.2f} % on BlazeFace's crops, {100 * fr['accuracy_yunet_mapped']:.2f} % "
                f"on YuNet's mapped ones and {100 * fr['accuracy_yunet_native']:.2f} % on its raw boxes" in " ".join(README.split())), (
        "re-quote alignment.json's framing comparison in the README")
    cr = _result("crop_resampling.json")
    for method in ("bilinear", "area"):
        acc = [100 * s[method]["accuracy"] for s in cr["sizes"].values()]
        assert f"{min(acc):.2f}–{max(acc):.2f} %" in README, f"re-quote crop_resampling.json's {method} range in the README"
    lr = _result("benchmark.json")["long_run"]
    assert f"{lr['multi_fps']:.0f} frames/s over all sources ({lr['multi_seconds']:.0f} s)" in README, (
        "re-quote benchmark.json's long_run in the README's Streams table")


def test_readme_quotes_the_default_cards_calibration_sweep():
    """The README's calibration-size figures are the sweep in the default's card (zoo/<default>/report/)."""
    from edge_emotion.export.bundle import calibration_summary

    sweep = json.loads((ROOT / "zoo" / INDEX["default"] / "report" / "calibration_size.json").read_text())
    means, draws, spread = calibration_summary(sweep)
    assert draws == [3], "the README says three draws each"
    text = " ".join(README.split())
    assert (f"{min(means):,} to {max(means):,} images give a mean int8 PublicTest accuracy of "
            f"{100 * min(means.values()):.2f} to {100 * max(means.values()):.2f} % over three draws each "
            f"(fp32: {100 * sweep['fp32_accuracy']:.2f} %), "
            f"while two draws of one size differ by up to {100 * spread:.2f} point") in text, (
        "re-quote the calibration sweep (python -m benchmarks.calibration_size) in the README's export section")


def test_readme_quotes_alexnets_latency_against_the_default_from_the_benchmark():
    """Both places that compare alexnet48's per-face latency with the default's quote the benchmark table's ratio."""
    rows = {(Path(r["file"]).parent.name, _key(r)): r for r in _result("benchmark.json")["rows"] if r.get("status") == "ok"}
    alex, default = rows[("alexnet48_fer7", "tflite_int8")], rows[(INDEX["default"], "tflite_int8")]
    ratio = f"{alex['p50_ms_b1'] / default['p50_ms_b1']:.1f}×"
    text = " ".join(README.split())
    assert f"it costs {ratio} the latency per face of the flip-averaged default" in text, (
        f"re-quote alexnet48's latency ratio ({ratio}, benchmarks/results/benchmark.json) in the README's Bundled models")
    assert (f"takes {alex['p50_ms_b1']:.3f} ms per face at batch 1, {ratio} the default's {default['p50_ms_b1']:.3f} ms"
            in text), f"re-quote alexnet48's latency ({ratio}) in the README's Benchmarks"
