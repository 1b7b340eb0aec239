"""``edge-emotion benchmark``: latency and accuracy of every backend, one table, the same data.

Method: each artifact is measured in its own subprocess (so one runtime's memory or
threads never colour another's row, and peak RSS is the row's own). Inputs are the same
real FER-2013 PrivateTest faces for every row; latency = wall time of the backend call
after warm-up, many repetitions, median and p95; threads fixed and reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .datasets import DEFAULT_DATA, DEFAULT_VIDEO
from .timing import percentile_ms, time_calls

log = logging.getLogger(__name__)

SAMPLE_IMAGE = Path(__file__).parent / "assets" / "astronaut.png"
COLUMNS = ["model", "format", "precision", "backend", "size_mb", "accuracy", "delta_vs_fp32", "p50_ms_b1", "p95_ms_b1",
           "per_face_ms_b8", "per_face_ms_b32", "faces_per_s", "face_det_ms_640x480", "e2e_fps", "peak_rss_mb", "threads",
           "runtime", "status"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="*", default=None, metavar="MODEL",
                   help="model files or bundled names (default: every artifact of the bundled models, plus their .keras)")
    p.add_argument("--backends", nargs="*", default=None, help="only these backends (litert, onnxruntime, tensorrt, keras)")
    p.add_argument("--data", default=DEFAULT_DATA, help="dataset for accuracy, PrivateTest split (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="accuracy on the first N test images only (default: all)")
    p.add_argument("--video", default=DEFAULT_VIDEO, help="clip for end-to-end FPS (default: %(default)s; the sample image if missing)")
    p.add_argument("--frames", type=int, default=120, help="video frames for end-to-end FPS (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per runtime (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=200, help="timed repetitions at batch 1 (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=20, help="untimed warm-up calls (default: %(default)s)")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write rows as JSON")
    p.add_argument("--markdown", default=None, metavar="OUT", help="write the table as Markdown")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="accuracy-vs-latency and FPS plots (needs matplotlib)")
    p.add_argument("--soak", type=int, default=0, metavar="N",
                   help="also run N frames through detect() and N frames per source through a multi-source stream; "
                   "report resident memory and open file descriptors")
    p.add_argument("--soak-sources", type=int, default=4, metavar="K", help="sources in the soak's stream (default: %(default)s)")
    p.add_argument("--soak-only", action="store_true", help="only the soak, not the backend table")
    p.add_argument("--row", default=None, help=argparse.SUPPRESS)  # internal: measure one artifact


def discover_models(models: list[str] | None) -> tuple[list[Path], list[str]]:
    """Model files to measure, and the bundled artifacts this installation lacks (``name/key``).

    Default: every artifact of every bundled model plus its .keras, from the package and, in a
    checkout, the repository's ``zoo/``; an installed wheel has only the device artifacts."""
    from .runtime.zoo import artifacts, load_index

    names = []
    out: list[Path] = []
    for m in models or list(load_index()["models"]):
        if models and Path(m).exists():
            out.append(Path(m))
        elif m in load_index()["models"]:
            names.append(m)
        else:
            raise ValueError(f"{m}: not a file and not a bundled model")
    missing = []
    for name in names:
        for key, path in artifacts(name).items():
            if key == "keras" and models:  # an explicit model name means its artifacts
                continue
            if path is None:
                missing.append(f"{name}/{key}")
            else:
                out.append(path)
    return out, missing


def measure_row(path: Path, args) -> dict:
    """Measure one artifact in this process."""
    import resource

    import cv2

    from .evaluate import add_leakage_free, metrics_from_probs, training_images
    from .predict import classifier_predictor, predict_images
    from .formats import format_for_path
    from .metadata import read_metadata, sha256_file
    from .runtime.classifier import EmotionClassifier

    fmt = format_for_path(path)
    meta = read_metadata(path)
    row = {"model": f"{meta.model_name}/{meta.label_set}", "file": str(path), "sha256": sha256_file(path),
           "format": fmt.name, "precision": meta.precision, "backend": fmt.backend,
           "size_mb": round(path.stat().st_size / 1e6, 3), "threads": args.threads}
    clf = EmotionClassifier(path, threads=args.threads)
    row["runtime"] = clf.backend.version()

    # the same real faces for every row
    from .datasets import load_dataset  # NumPy-only loader; no TensorFlow

    if Path(args.data).exists():
        ds = load_dataset(args.data, meta.label_set)
        test = ds["test"]
        x_all, y_all = (test.x[: args.limit], test.hard_labels[: args.limit]) if args.limit else (test.x, test.hard_labels)
        faces = x_all[:32]
    else:
        x_all, y_all, faces = None, None, np.zeros((32, 48, 48, 1), np.uint8)
        row["accuracy_note"] = f"{args.data} not found"
    b32 = clf.preprocessing.batch(faces, order="rgb")
    t1 = time_calls(lambda: clf.predict(b32[:1]), args.warmup, args.repeats)
    t8 = time_calls(lambda: clf.predict(b32[:8]), max(3, args.warmup // 4), max(20, args.repeats // 4))
    t32 = time_calls(lambda: clf.predict(b32), max(3, args.warmup // 4), max(20, args.repeats // 8))
    row.update(p50_ms_b1=percentile_ms(t1, 50), p95_ms_b1=percentile_ms(t1, 95),
               per_face_ms_b8=percentile_ms(t8, 50) / 8, per_face_ms_b32=percentile_ms(t32, 50) / 32)
    row["faces_per_s"] = 32 / (np.median(t32))

    if x_all is not None:
        probs = predict_images(classifier_predictor(clf), x_all)  # the classifier loaded above, not a second copy
        res = metrics_from_probs(probs, y_all, clf.labels)
        train_x, val_in_train = training_images(ds, meta)
        if train_x is not None:
            add_leakage_free(res, probs.argmax(1) == y_all, x_all, train_x, val_in_train)
        row["accuracy"], row["macro_f1"], row["n_test"] = res.accuracy, res.macro_f1, res.n
        if "without_train_copies" in res.extra:  # JSON only: test images with no pixel-identical copy in its training data
            row["accuracy_without_train_copies"] = res.extra["without_train_copies"]["accuracy"]
            row["train_copies_excluded"] = res.extra["without_train_copies"]["excluded"]  # 314 for a refit: val copies too

    # face detection on a 640x480 frame, and end to end on the clip
    from .runtime import EmotionDetector

    det = EmotionDetector(model=path, threads=args.threads)
    sample = cv2.imread(str(SAMPLE_IMAGE))
    frame640 = cv2.resize(sample, (640, 480))
    td = time_calls(lambda: det.face_detector.detect(frame640), 5, 50)
    row["face_det_ms_640x480"] = percentile_ms(td, 50)
    row["face_detector"] = det.face_detector.name
    if Path(args.video).exists():
        cap = cv2.VideoCapture(args.video)
        frames = []
        while len(frames) < args.frames:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        cap.release()
        row["e2e_source"] = f"{Path(args.video).name} ({len(frames)} frames)"
    else:
        frames = [sample] * 30
        row["e2e_source"] = "astronaut.png x30"
    det.detect(frames[0])
    t = time.perf_counter()
    n_faces = sum(len(det.detect(f)) for f in frames)
    row["e2e_fps"] = len(frames) / (time.perf_counter() - t)
    row["e2e_faces"] = n_faces
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["status"] = "ok"
    return row


def _subprocess_row(path: Path, args) -> dict:
    cmd = [sys.executable, "-m", "edge_emotion.cli", "benchmark", "--row", str(path), "--data", args.data,
           "--video", args.video, "--frames", str(args.frames), "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--warmup", str(args.warmup)] + (["--limit", str(args.limit)] if args.limit else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"file": str(path), "status": f"skipped: {reason}"}
    return json.loads(lines[-1])


def host_info() -> dict:
    import numpy

    return {"host": platform.node(), "machine": platform.machine(), "processor": _cpu_name(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__, "date": time.strftime("%Y-%m-%d %H:%M")}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(args) -> list[dict]:
    from .formats import format_for_path
    from .runtime.backends import available_backends

    avail = available_backends()
    paths, missing = discover_models(args.models)
    rows = [missing_row(m) for m in missing]
    for path in paths:
        fmt = format_for_path(path)
        if args.backends and fmt.backend not in args.backends:
            continue
        if fmt.backend != "keras" and avail.get(fmt.backend) != "ok":
            rows.append({"file": str(path), "format": fmt.name, "backend": fmt.backend, "status": f"skipped: {avail.get(fmt.backend)}"})
            continue
        log.info("measuring %s", path)
        rows.append(_subprocess_row(path, args))
    # the TensorRT row is shown even when no engine could be built here
    if not any(r.get("format") == "engine" for r in rows) and (not args.backends or "tensorrt" in args.backends):
        rows.append({"file": "-", "format": "engine", "precision": "fp16", "backend": "tensorrt",
                     "status": "skipped: " + tensorrt_skip_reason(avail)})
    add_deltas(rows, full_split=args.limit is None)
    return rows


def missing_row(name_key: str) -> dict:
    """The row of a bundled artifact this installation lacks (``name/key``, e.g. ``edge_cnn_fer7/tflite_fp32``)."""
    from .formats import split_artifact_key

    name, key = name_key.split("/")
    fmt, precision = split_artifact_key(key)
    return {"model": name, "file": name_key, "format": fmt, "precision": precision,
            "status": f"skipped: not installed (the wheel carries only device artifacts; it is in the repository under zoo/{name}/)"}


def tensorrt_skip_reason(avail: dict[str, str]) -> str:
    """Why the benchmark has no measured TensorRT row: the runtime's reason, or no engine among the models."""
    if avail.get("tensorrt") != "ok":
        return str(avail.get("tensorrt"))
    return "no .engine among the models: build one on this GPU with edge-emotion export MODEL.keras --format engine"


def add_deltas(rows: list[dict], full_split: bool) -> None:
    """``delta_vs_fp32``: each row's accuracy minus its model's Keras row; for a bundled model shipped without its
    .keras, minus the Keras accuracy recorded at bundling (same full split, so only when ``full_split``)."""
    ref = {r.get("model"): r.get("accuracy") for r in rows if r.get("format") == "keras" and r.get("accuracy") is not None}
    for r in rows:
        if r.get("accuracy") is None:
            continue
        if ref.get(r.get("model")) is not None:
            r["delta_vs_fp32"] = r["accuracy"] - ref[r["model"]]
        elif full_split and (recorded := _recorded_keras_accuracy(Path(r["file"]))) is not None:
            r["delta_vs_fp32"] = r["accuracy"] - recorded
            r["fp32_reference"] = "recorded"


def _recorded_keras_accuracy(path: Path) -> float | None:
    from .runtime.zoo import MODELS_DIR, ZOO_DIR, load_index

    for root in (MODELS_DIR, ZOO_DIR):
        try:
            name = path.resolve().relative_to(root.resolve()).parts[0]
        except ValueError:  # not a bundled file
            continue
        return ((load_index()["models"].get(name) or {}).get("keras") or {}).get("test_accuracy")
    return None


def _fmt(v, col: str) -> str:
    if v is None:
        return ""
    if col in ("accuracy",):
        return f"{v:.2%}"
    if col == "delta_vs_fp32":
        return f"{v * 100:+.2f} pt"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return str(v)


def to_markdown(rows: list[dict], host: dict) -> str:
    cols = [c for c in COLUMNS if c not in ("runtime",)]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        mark = {"delta_vs_fp32": "*"} if r.get("fp32_reference") == "recorded" else {}
        out.append("| " + " | ".join(_fmt(r.get(c), c) + mark.get(c, "") for c in cols) + " |")
    runtimes = sorted({r["runtime"] for r in rows if r.get("runtime")})
    out.append("")
    if any(r.get("fp32_reference") == "recorded" for r in rows):
        out.append("\\* against the fp32 Keras accuracy recorded in `models/index.json` when the model was bundled "
                   "(its .keras is not shipped).")
        out.append("")
    out.append(f"Host: {host['processor']} ({host['cpus']} CPUs), Python {host['python']}, {host['date']}. "
               f"Runtimes: {'; '.join(runtimes)}.")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], out: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from None
    ok = [r for r in rows if r.get("status") == "ok"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    markers = {"litert": "o", "onnxruntime": "s", "tensorrt": "^", "keras": "D"}
    for r in ok:
        if r.get("accuracy") is not None:
            a.scatter(r["p50_ms_b1"], r["accuracy"] * 100, s=70, marker=markers.get(r["backend"], "o"),
                      label=f"{r['model']} {r['format']} {r['precision']} ({r['backend']})")
    a.legend(fontsize=8)
    a.set_xscale("log")
    a.set_xlabel("latency per face, batch 1, p50 (ms, log scale)")
    a.set_ylabel("PrivateTest accuracy (%), each model's own labels")
    a.set_title("Accuracy vs latency")
    a.grid(alpha=0.3)
    names = [f"{r['model'].replace('/', chr(10))}\n{r['format']}\n{r['precision']}" for r in ok]  # family, labels, format
    b.bar(range(len(ok)), [r["e2e_fps"] for r in ok], color="tab:blue")
    b.set_xticks(range(len(ok)), names, fontsize=6)
    b.set_ylabel("frames per second")
    b.set_title("End-to-end FPS (detect + classify)")
    b.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


class _LoopingCapture:
    """A capture that replays real frames ``n`` times over (for the long-run measurement)."""

    def __init__(self, frames: list, n: int) -> None:
        self.frames, self.left, self.i = frames, n, 0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        self.i += 1
        return True, self.frames[self.i % len(self.frames)]

    def release(self) -> None:
        pass


def _rss_mb() -> float:
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open_fds() -> int | None:
    for d in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(d))
        except OSError:
            continue
    return None


def soak(n: int, video: str, threads: int, sources: int = 4) -> dict:
    """Long runs: ``n`` frames through detect(), then ``n`` frames from each of ``sources`` sources through one
    stream (every tick's faces in one classifier call). Resident memory and open file descriptors are
    sampled after a warm-up (the first 5 %) and every 10 % after it; "flat" means the end equals the start
    within noise, and the same number of file descriptors is open after the stream as before it."""
    import gc

    import cv2

    from .runtime import EmotionDetector
    from .runtime.sources import FrameSource

    frames = []
    if Path(video).exists():
        cap = cv2.VideoCapture(video)
        while len(frames) < 300:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        cap.release()
    frames = frames or [cv2.imread(str(SAMPLE_IMAGE))]
    from .runtime.zoo import measured_file

    det = EmotionDetector(threads=threads)
    out: dict = {"frames": n, "classifier": measured_file(det.classifier.path)}
    for i in range(200):
        det.detect(frames[i % len(frames)])
    gc.collect()
    start = _rss_mb()
    t = time.perf_counter()
    for i in tqdm_or_range(n, "soak: detect()"):
        det.detect(frames[i % len(frames)])
    gc.collect()
    out.update(detect_rss_start_mb=start, detect_rss_end_mb=_rss_mb(), detect_seconds=time.perf_counter() - t)

    fds_before = _open_fds()
    srcs = [FrameSource(f"soak{k}", live=False, opener=lambda k=k: _LoopingCapture(frames[k * 7:] + frames[:k * 7], n))
            for k in range(sources)]
    total = n * sources
    warm, every = max(1, total // 20), max(1, total // 10)
    samples: list[dict] = []
    per_source: dict[str, int] = {}
    t = time.perf_counter()
    with det.stream(srcs, detect_every=1, smoothing=0.5) as stream:
        for k, res in enumerate(tqdm_or_iter(stream, total, f"soak: {sources} sources"), 1):
            per_source[res.source] = per_source.get(res.source, 0) + 1
            if k == warm or (k > warm and (k - warm) % every == 0) or k == total:
                gc.collect()
                samples.append({"results": k, "rss_mb": round(_rss_mb(), 1), "fds": _open_fds(),
                                "seconds": round(time.perf_counter() - t, 1)})
    seconds = time.perf_counter() - t
    time.sleep(0.2)  # capture threads release their captures on the way out
    out.update(multi_sources=sources, multi_frames_per_source=per_source, multi_seconds=seconds,
               multi_fps=total / max(seconds, 1e-9), multi_samples=samples,
               multi_rss_start_mb=samples[0]["rss_mb"], multi_rss_end_mb=samples[-1]["rss_mb"],
               multi_fds_start=samples[0]["fds"], multi_fds_end=samples[-1]["fds"],
               fds_before=fds_before, fds_after=_open_fds())
    return out


def tqdm_or_range(n: int, desc: str):
    return tqdm_or_iter(range(n), n, desc)


def tqdm_or_iter(it, total: int, desc: str):
    """A progress bar on a terminal when tqdm is installed (the train extra); the plain iterable otherwise."""
    import sys

    if not sys.stderr.isatty():
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, desc=desc, unit="frame", leave=False)


def soak_summary(r: dict) -> str:
    frames = ", ".join(f"{v:,}" for v in r["multi_frames_per_source"].values())
    return (f"\nLong run: {r['frames']:,} frames through detect(): resident memory {r['detect_rss_start_mb']:.1f} -> "
            f"{r['detect_rss_end_mb']:.1f} MB. {r['multi_sources']} sources x {r['frames']:,} frames through one stream "
            f"(detection every frame, tracking, smoothing, one classifier call per tick; {frames} results per source) "
            f"in {r['multi_seconds']:.0f} s ({r['multi_fps']:.0f} frames/s over all sources): resident memory "
            f"{r['multi_rss_start_mb']:.1f} -> {r['multi_rss_end_mb']:.1f} MB and open file descriptors "
            f"{r['multi_fds_start']} -> {r['multi_fds_end']} from the first 5 % to the end "
            f"(samples: {', '.join(str(s['rss_mb']) for s in r['multi_samples'])} MB); {r['fds_before']} file descriptors "
            f"open before the stream, {r['fds_after']} after it.\n")


def main(args) -> int:
    if args.row:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        print(json.dumps(measure_row(Path(args.row), args), default=float))
        return 0
    host = host_info()
    rows = [] if args.soak_only else run(args)
    md = "" if args.soak_only else to_markdown(rows, host)
    long_run = None
    if args.soak:
        long_run = soak(args.soak, args.video, args.threads, args.soak_sources)
        md += soak_summary(long_run)
    print(md)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps({"host": host, "method": __doc__, "rows": rows, "long_run": long_run}, indent=1, default=float))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(md)
    if args.plot and rows:
        plot(rows, args.plot)
    return 0
