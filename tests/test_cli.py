"""The command line: --help everywhere, JSON output, one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

COMMANDS = ["detect", "info", "train", "evaluate", "export", "export-detector", "video", "camera", "benchmark", "doctor"]


def run(*args, check=False):
    return subprocess.run([sys.executable, "-m", "edge_emotion.cli", *args], capture_output=True, text=True, check=check)


@pytest.mark.parametrize("cmd", [None, *COMMANDS])
def test_help(cmd):
    r = run(*([cmd] if cmd else []), "--help")
    assert r.returncode == 0
    assert "usage: edge-emotion" in r.stdout


def test_detect_json_sample_image(tmp_path):
    out = tmp_path / "annotated.png"
    r = run("detect", "--json", "--out", str(out), check=True)
    faces = json.loads(r.stdout)
    assert len(faces) == 1 and faces[0]["emotion"] == "happy"
    assert out.stat().st_size > 10_000


def test_detect_several_images_json(scenes):
    r = run("detect", "--json", str(scenes / "two_people.jpg"), str(scenes / "obama-1080p.jpg"), check=True)
    res = json.loads(r.stdout)
    assert [len(x["faces"]) for x in res] == [2, 1]


@pytest.mark.parametrize("args,needle", [
    (["detect", "no/such/image.jpg"], "image file not found"),
    (["detect", "--model", "no/such/model.tflite"], "model file not found"),
    (["detect", "--model", "model.pt"], "unknown model suffix"),
    (["info", "no/such.onnx"], "model file not found"),
    (["video", "no/such.mp4"], "video file not found"),
])
def test_bad_input_exits_non_zero_with_one_line(args, needle):
    r = run(*args)
    assert r.returncode != 0
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("edge-emotion")]
    assert len(err) == 1 and needle in err[0], r.stderr
    assert "Traceback" not in r.stderr


def test_not_an_image(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_text("not an image")
    r = run("detect", str(bad))
    assert r.returncode == 2 and "cannot decode image" in r.stderr


def test_info_shows_the_metadata():
    from edge_emotion.runtime.zoo import resolve_model

    r = run("info", "--json", str(resolve_model(None)), check=True)
    d = json.loads(r.stdout)
    assert d["format"] == "tflite" and d["metadata"]["precision"] == "int8"
    assert len(d["metadata"]["labels"]) == 7


def test_benchmark_one_table_for_an_artifact(tmp_path, fer_npz, scenes):
    """`edge-emotion benchmark` on a small slice: a measured row per artifact, plus the TensorRT row that says why."""
    from edge_emotion.benchmark import tensorrt_skip_reason
    from edge_emotion.runtime.backends import available_backends
    from edge_emotion.runtime.zoo import artifact_path, load_index

    model = artifact_path(load_index()["default"], "tflite_int8")
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    r = run("benchmark", "--models", str(model), "--data", str(fer_npz), "--limit", "400", "--frames", "10",
            "--repeats", "20", "--warmup", "2", "--json", str(out_json), "--markdown", str(out_md))
    assert r.returncode == 0, r.stderr
    rows = json.loads(out_json.read_text())["rows"]
    row = next(x for x in rows if x.get("file", "").endswith("model_int8.tflite"))
    assert row["status"] == "ok" and row["n_test"] == 400 and 0.3 < row["accuracy"] <= 1
    assert 0.3 < row["accuracy_without_train_copies"] <= 1  # the slice holds PrivateTest images copied from Training
    assert 0 < row["p50_ms_b1"] <= row["p95_ms_b1"] and row["faces_per_s"] > 0 and row["e2e_fps"] > 0
    trt = next(x for x in rows if x.get("format") == "engine")
    # no .engine was asked for, so the row must say why there is none: the runtime's reason here, or
    # (on a GPU machine with TensorRT) that no engine was built
    assert trt["status"] == "skipped: " + tensorrt_skip_reason(available_backends())
    assert trt["status"] != "skipped: ok" and len(trt["status"]) > len("skipped: ") + 10
    md = out_md.read_text()
    assert "| tflite | int8 | litert |" in md and f"{row['accuracy']:.2%}" in md and "| engine | fp16 | tensorrt |" in md


def test_benchmark_soak_of_several_sources_reports_memory_and_file_descriptors(tmp_path, scenes):
    out_json, out_md = tmp_path / "soak.json", tmp_path / "soak.md"
    r = run("benchmark", "--soak-only", "--soak", "120", "--soak-sources", "3", "--threads", "1",
            "--video", str(scenes / "short_hamilton_clip.mp4"), "--json", str(out_json), "--markdown", str(out_md))
    assert r.returncode == 0, r.stderr
    d = json.loads(out_json.read_text())
    lr = d["long_run"]
    assert d["rows"] == [] and lr["multi_frames_per_source"] == {"soak0": 120, "soak1": 120, "soak2": 120}
    assert lr["fds_after"] == lr["fds_before"]  # every capture thread and capture gone
    assert lr["multi_fds_end"] == lr["multi_fds_start"]
    assert 50 < lr["multi_rss_start_mb"] and 50 < lr["detect_rss_end_mb"] and lr["multi_fps"] > 0
    assert len(lr["multi_samples"]) >= 10 and lr["multi_samples"][-1]["results"] == 360
    assert "3 sources x 120 frames through one stream" in out_md.read_text()


def test_benchmark_delta_against_a_keras_row_or_the_recorded_fp32_accuracy():
    """A model shipped without its .keras still gets its int8-vs-fp32 delta, from the accuracy recorded at
    bundling, marked as such; on a slice (--limit) that recorded full-split figure would not compare."""
    from edge_emotion.benchmark import add_deltas, host_info, to_markdown
    from edge_emotion.runtime.zoo import artifact_path, load_index

    name = load_index()["default"]
    recorded = load_index()["models"][name]["keras"]["test_accuracy"]
    art = str(artifact_path(name, "tflite_int8"))
    rows = [{"model": "m/fer7", "file": art, "format": "tflite", "accuracy": 0.70}]
    add_deltas(rows, full_split=True)
    assert rows[0]["delta_vs_fp32"] == pytest.approx(0.70 - recorded) and rows[0]["fp32_reference"] == "recorded"
    md = to_markdown(rows, host_info())
    assert "pt*" in md and "recorded in `models/index.json`" in md

    sliced = [{"model": "m/fer7", "file": art, "format": "tflite", "accuracy": 0.70}]
    add_deltas(sliced, full_split=False)
    assert "delta_vs_fp32" not in sliced[0]

    with_keras = [{"model": "m/fer7", "file": "x.keras", "format": "keras", "accuracy": 0.71},
                  {"model": "m/fer7", "file": art, "format": "tflite", "accuracy": 0.70}]
    add_deltas(with_keras, full_split=True)
    assert with_keras[1]["delta_vs_fp32"] == pytest.approx(-0.01) and "fp32_reference" not in with_keras[1]
    assert "recorded in" not in to_markdown(with_keras, host_info())


def test_benchmark_plot_from_rows(tmp_path):
    """--plot draws accuracy-vs-latency and FPS bars from the rows (here the committed table's)."""
    from pathlib import Path

    from edge_emotion.benchmark import plot

    rows = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "benchmark.json").read_text())["rows"]
    out = tmp_path / "bench.png"
    plot(rows, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_tensorrt_row_reason_on_a_gpu_machine_without_an_engine():
    """With TensorRT usable but no .engine among the models, the row says to build one (never 'skipped: ok')."""
    from edge_emotion.benchmark import tensorrt_skip_reason

    assert "edge-emotion export" in tensorrt_skip_reason({"tensorrt": "ok"})
    assert tensorrt_skip_reason({"tensorrt": "no NVIDIA GPU"}) == "no NVIDIA GPU"


def test_cli_choices_come_from_the_format_table():
    from edge_emotion.cli import build_parser
    from edge_emotion.formats import FORMATS, all_precisions, backend_names

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    export = {a.dest: a for a in sub["export"]._actions}
    assert tuple(export["format"].choices) == tuple(f.name for f in FORMATS if f.name != "keras")
    assert tuple(export["precision"].choices) == all_precisions()
    detect = {a.dest: a for a in sub["detect"]._actions}
    assert tuple(detect["backend"].choices) == ("auto", "fastest", *backend_names())


def test_benchmark_from_a_wheel_lists_what_it_cannot_measure(tmp_path, monkeypatch):
    """Without the repository's zoo/ (an installed wheel) the benchmark measures the device artifacts and gives the
    others a row that says where they live, instead of failing on a missing file."""
    from edge_emotion.benchmark import discover_models, host_info, missing_row, to_markdown
    from edge_emotion.runtime import zoo

    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "no-zoo")
    paths, missing = discover_models(None)
    assert paths and all(p.parent.parent == zoo.MODELS_DIR for p in paths)
    assert {"edge_cnn_fer7/keras", "edge_cnn_fer7/tflite_fp32", "alexnet48_fer7/tflite_int8"} <= set(missing)
    row = missing_row("edge_cnn_fer7/tflite_fp32")
    assert (row["format"], row["precision"]) == ("tflite", "fp32") and "zoo/edge_cnn_fer7/" in row["status"]
    assert "| tflite | fp32 |" in to_markdown([row], host_info())
