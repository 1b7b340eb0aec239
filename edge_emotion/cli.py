"""The ``edge-emotion`` command line. ``edge-emotion COMMAND --help`` documents each command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ._version import __version__
from .errors import EdgeEmotionError

log = logging.getLogger("edge_emotion.cli")

SAMPLE_IMAGE = Path(__file__).parent / "assets" / "astronaut.png"


def _runtime_args(p: argparse.ArgumentParser) -> None:
    from .formats import backend_names
    from .runtime.face_detection import DETECTORS

    p.add_argument("--model", "-m", default=None, help="model file or bundled name (default: the bundled default model)")
    p.add_argument("--backend", default="auto", choices=["auto", "fastest", *backend_names()],
                   help="runtime backend (default: from the model file's suffix; fastest: measured once on this device)")
    p.add_argument("--face-detector", default="auto", choices=list(DETECTORS),
                   help="face detector (default: YuNet, Haar fallback)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per runtime (default: up to 4)")
    p.add_argument("--providers", default=None,
                   help="comma-separated ONNX Runtime execution providers, e.g. CUDAExecutionProvider,CPUExecutionProvider")
    p.add_argument("--align", action="store_true", help="rotate face crops so the eyes are level")
    p.add_argument("--high-res", default="auto", choices=["auto", "on", "off"],
                   help="look harder for small faces in large frames (default: %(default)s = frames from 1000 px; YuNet "
                        "runs them at their own resolution, BlazeFace adds tiles)")
    p.add_argument("--detector-side", type=int, default=None, metavar="PX",
                   help="the face detector's network pixels for the frame's long side, a multiple of 32 (default: YuNet "
                        "224, BlazeFace 192); "
                        "fewer pixels are faster and miss small faces, more find smaller faces (README)")


def _detector(args):
    from .runtime import EmotionDetector

    providers = args.providers.split(",") if args.providers else None
    return EmotionDetector(model=args.model, backend=args.backend, face_detector=args.face_detector,
                           threads=args.threads, providers=providers, align=args.align, high_res=args.high_res,
                           detector_side=args.detector_side)


# ------------------------------------------------------------------ commands
def cmd_detect(args) -> int:
    import cv2

    from .runtime.annotate import annotate
    from .runtime.image import read_image

    images = args.images or [str(SAMPLE_IMAGE)]
    det = _detector(args)
    results = []
    out = Path(args.out) if args.out else None
    if out and len(images) > 1:
        out.mkdir(parents=True, exist_ok=True)
    for path in images:
        frame = read_image(path)
        faces = det.detect(frame)
        results.append({"image": path, "faces": [f.to_dict() for f in faces]})
        if not args.json:
            print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
            for i, f in enumerate(faces):
                top = sorted(f.probabilities.items(), key=lambda kv: -kv[1])[:3]
                print(f"  face {i}: box={list(f.box)} score={f.score:.2f} emotion={f.emotion} ({f.confidence:.0%}); "
                      + ", ".join(f"{k} {v:.0%}" for k, v in top))
        if out:
            target = out / (Path(path).stem + "_annotated.png") if len(images) > 1 else out
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), annotate(frame, faces)):
                raise EdgeEmotionError(f"cannot write {target}: unsupported extension or unwritable folder")
            if not args.json:
                print(f"  annotated image: {target}")
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0]["faces"], indent=1))
    return 0


def cmd_info(args) -> int:
    from .formats import format_for_path
    from .metadata import read_metadata, sha256_file

    meta = read_metadata(args.model)
    fmt = format_for_path(args.model)
    d = {"file": str(args.model), "format": fmt.name, "size_bytes": Path(args.model).stat().st_size,
         "sha256": sha256_file(args.model), "metadata": meta.to_dict()}
    if args.json:
        print(json.dumps(d, indent=1))
    else:
        print(f"{args.model}: {fmt.name} {meta.precision}, {meta.model_name}, {len(meta.labels)} labels ({', '.join(meta.labels)})")
        print(f"  input {meta.input_size[0]}x{meta.input_size[1]} {meta.color}, (pixel - {meta.mean}) / {meta.std}, "
              f"{'sigmoid (multi-label)' if meta.multi_label else 'softmax'}")
        print(f"  size {d['size_bytes'] / 1e6:.2f} MB, sha256 {d['sha256'][:16]}..., source sha256 {str(meta.source_sha256)[:16]}...")
    return 0


def cmd_train(args) -> int:
    from .train.cli import run

    run(args)
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_file

    res = evaluate_file(args.model, args.data, args.split, tta=args.tta, limit=args.limit)
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
    else:
        print(res.summary())
        for lab, m in res.per_class.items():
            print(f"  {lab:>10}: precision {m['precision']:.3f} recall {m['recall']:.3f} f1 {m['f1']:.3f} n={m['support']}")
    return 0


def cmd_export(args) -> int:
    from .export import export_model

    res = export_model(args.model, args.format, args.precision, out=args.out, calib=args.calib, data=args.data,
                       n_calib=args.n_calib, n_validate=args.n_validate, threshold=args.threshold,
                       reduce_range=not args.onnx_full_range, flip_average=args.flip_average)
    print(res.summary())
    return 0


def cmd_export_detector(args) -> int:
    from .export.detector import check_request, export_detector, frames_from
    from .runtime.image import read_image

    check_request(args.variant, args.format, args.precision)
    if args.precision == "int8" and not args.calib:
        raise ValueError("an int8 detector is calibrated on real frames: give --calib with photos, a folder or a "
                         "video like the ones it will see")
    calib = frames_from(args.calib) if args.calib else None
    validate = [read_image(str(SAMPLE_IMAGE))] + (calib or [])
    out = export_detector(args.variant, args.format, args.out, args.precision, validate, calib_images=calib)
    print(f"{out}: validated against the bundled original on {len(validate)} image(s); use it with "
          f"BlazeFaceDetector({args.variant!r}, model_path={str(out)!r})")
    return 0


def cmd_video(args) -> int:
    from .cli_stream import run_cli_stream

    return run_cli_stream(_detector(args), args.inputs, args)


def cmd_camera(args) -> int:
    from .cli_stream import run_cli_stream

    return run_cli_stream(_detector(args), args.sources or ["0"], args)


def cmd_benchmark(args) -> int:
    from .benchmark import main as bench_main

    return bench_main(args)


def cmd_doctor(args) -> int:
    from .doctor import render_text, run_doctor

    report = run_doctor(model=args.model, seconds=args.seconds, threads=args.threads, include_keras=args.keras,
                        refresh=args.refresh)
    print(json.dumps(report.to_dict(), indent=1) if args.json else render_text(report))
    return 0 if report.recommendation is not None else 1  # 1: no backend could run here


def build_parser() -> argparse.ArgumentParser:
    from .formats import FORMATS, agreement_threshold, all_precisions

    p = argparse.ArgumentParser(prog="edge-emotion", description="Facial emotion recognition from training to the edge.")
    p.add_argument("--version", action="version", version=f"edge-emotion {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("detect", help="detect faces and emotions in images",
                       description="Detect faces and their emotions in images (default: the bundled sample image).")
    d.add_argument("images", nargs="*", metavar="IMAGE", help="image files (default: the bundled astronaut.png)")
    d.add_argument("--json", action="store_true", help="print JSON: a list of faces (a list per image for several)")
    d.add_argument("--out", "-o", default=None, help="write the annotated image here (a folder for several images)")
    _runtime_args(d)
    d.set_defaults(func=cmd_detect)

    i = sub.add_parser("info", help="show a model file's metadata", description="Show the metadata stored in a model file.")
    i.add_argument("model", metavar="MODEL")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    t = sub.add_parser("train", help="train a model (needs the train extra)", description="Train a model; re-run to resume.")
    from .datasets import DEFAULT_DATA
    from .train.cli import build_parser as train_parser  # light: imports no TensorFlow at parse time

    train_parser(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy and per-class figures of a model file on a dataset split",
                       description="Evaluate a .keras, .tflite, .onnx or .engine model on a dataset split.")
    e.add_argument("model", metavar="MODEL")
    e.add_argument("--data", default=DEFAULT_DATA, help="dataset (default: %(default)s)")
    e.add_argument("--split", default="test", help="split name: train, val or test (default: %(default)s)")
    e.add_argument("--tta", action="store_true", help="also report horizontal-flip test-time augmentation")
    e.add_argument("--limit", type=int, default=None, help="only the first N images")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="export a .keras model to TFLite, ONNX or a TensorRT engine, validated",
                       description="Export a trained .keras model and validate the artifact against it.")
    x.add_argument("model", metavar="MODEL", help=".keras model with its .keras.json metadata sidecar")
    x.add_argument("--format", "-f", default="tflite", choices=[f.name for f in FORMATS if f.name != "keras"])
    x.add_argument("--precision", "-p", default="int8", choices=list(all_precisions()))
    x.add_argument("--calib", default=None, help="calibration data for int8 (dataset or image folder; default: --data)")
    x.add_argument("--data", default=None, help="dataset for calibration and validation (default: the one the model was trained on)")
    x.add_argument("--out", "-o", default=None, help="output file or folder (default: beside the model)")
    x.add_argument("--n-calib", type=int, default=2000, help="calibration images, drawn evenly across classes (default: %(default)s)")
    x.add_argument("--n-validate", type=int, default=1000, help="test images compared with the Keras model (0: skip)")
    x.add_argument("--threshold", type=float, default=None, help="minimum top-1 agreement (default: per precision, "
                   + ", ".join(f"{p} {agreement_threshold(p):g}" for p in all_precisions()) + ")")
    x.add_argument("--onnx-full-range", action="store_true", help="ONNX int8 with full 8-bit weights (ARM/VNNI targets)")
    x.add_argument("--flip-average", action="store_true",
                   help="average each face with its mirror image inside the artifact (one call, 2x compute per face)")
    x.set_defaults(func=cmd_export)

    from .runtime.face_detection.blazeface import CONFIGS, DETECTOR_FORMATS, DETECTOR_PRECISIONS

    xd = sub.add_parser("export-detector", help="export the BlazeFace face detector to ONNX, TensorRT or int8 TFLite",
                        description="Export the bundled BlazeFace to ONNX, a TensorRT engine or full-int8 TFLite, validated "
                        "against the bundled original on the sample image (and the --calib frames); a failing export is "
                        "rejected. On x86 the int8 detector lost faces near the threshold and failed that check, and was faster than "
                        "the float one on one CPU and slower on another (benchmarks/results/face_detection.md): measure it on "
                        "your device before using it. The default detector, YuNet, is not exported.")
    xd.add_argument("--variant", default="full", choices=list(CONFIGS), help="full-range (default), its sparse twin or short-range")
    xd.add_argument("--format", "-f", default="onnx", choices=list(DETECTOR_FORMATS))
    xd.add_argument("--precision", "-p", default="fp16", choices=list(DETECTOR_PRECISIONS),
                    help="TensorRT engine precision, or int8 with --format tflite (default: %(default)s)")
    xd.add_argument("--calib", nargs="+", default=None, metavar="PATH",
                    help="int8: photos, folders of photos or videos to calibrate on (100 frames per video)")
    xd.add_argument("--out", "-o", default=None, help="output file or folder (default: current folder)")
    xd.set_defaults(func=cmd_export_detector)

    v = sub.add_parser("video", help="run on video files", description="Detect emotions in every frame of one or more "
                       "video files; several files are processed side by side, their faces classified in one batch per tick.")
    v.add_argument("inputs", nargs="+", metavar="IN", help="video files (or any source 'camera' takes)")
    _stream_args(v)
    v.set_defaults(func=cmd_video)

    c = sub.add_parser("camera", help="run on cameras, stream URLs or GStreamer pipelines",
                       description="Live emotions from one or more cameras (index or /dev/videoN), URLs (rtsp://, http://, "
                       "tcp://, ...) or GStreamer pipelines ('... ! appsink', needs an OpenCV built with GStreamer). "
                       "Only the newest frame of each is processed; a source that drops out is reconnected with back-off.")
    c.add_argument("sources", nargs="*", metavar="SOURCE", help="camera index, URL or pipeline (default: camera 0)")
    _stream_args(c)
    c.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="failed attempts in a row (back-off 0.5 s doubling to 8 s) before a source is given up (default: 5)")
    c.set_defaults(func=cmd_camera)

    b = sub.add_parser("benchmark", help="latency and accuracy of every backend in one table",
                       description="Measure latency and accuracy for every available artifact, the same way on the same data.")
    from .benchmark import add_arguments

    add_arguments(b)
    b.set_defaults(func=cmd_benchmark)

    dr = sub.add_parser("doctor", help="this device, its runtimes and models, and the fastest backend measured here",
                        description="Report the machine (CPU int8 features, GPU), the installed runtimes and bundled models, "
                        "time each available backend for a few seconds and recommend the fastest.")
    dr.add_argument("--json", action="store_true", help="print the report as JSON")
    dr.add_argument("--model", "-m", default=None, help="bundled model name or model file to time (default: the bundled default)")
    dr.add_argument("--seconds", type=float, default=1.5, help="timed seconds per backend row (default: %(default)s)")
    dr.add_argument("--threads", type=int, default=None, help="CPU threads per runtime (default: up to 4)")
    dr.add_argument("--keras", action="store_true", help="also time the .keras model (imports TensorFlow; train extra)")
    dr.add_argument("--refresh", action="store_true", help="store this recommendation as the cached backend='fastest' choice")
    dr.set_defaults(func=cmd_doctor)
    return p


def _stream_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", default=None,
                   help="annotated video: a .mp4 file for one source, else a folder with one <source>.mp4 per source")
    p.add_argument("--jsonl", default=None, metavar="PATH",
                   help="one JSON line per source frame (with its source's name) here; '-' for standard output")
    p.add_argument("--show", action="store_true", help="show a window per source (only when a display exists)")
    p.add_argument("--no-status", action="store_true", help="no live status lines on the terminal")
    p.add_argument("--detect-every", type=int, default=1, help="run the face detector every N frames, track in between")
    p.add_argument("--smoothing", type=float, default=None, help="EMA factor for per-track probabilities (0..1; default off)")
    p.add_argument("--max-frames", type=int, default=None, help="stop each source after N frames")
    p.add_argument("--skip", type=int, default=0, help="files: process one frame, then skip N (default: every frame)")
    _runtime_args(p)


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # train/export: keep TensorFlow's C++ start-up chatter out
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (EdgeEmotionError, FileNotFoundError, ValueError, ImportError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        print(f"edge-emotion {args.command}: error: {msg}", file=sys.stderr)
        return 2 if isinstance(exc, (ValueError, FileNotFoundError)) else 1


if __name__ == "__main__":
    sys.exit(main())
