"""Runtime checks run twice by tests/arm64/run.sh: natively (x86_64) and on aarch64 under qemu-user.

    check.py run --out RESULT.json [--faces 300] [--frames 40] [--threads 1]
    check.py compare X86.json ARM.json [ARM2.json ...]

``run`` uses only what a device installs (numpy, OpenCV, LiteRT, ONNX Runtime and the edge-emotion
wheel) and writes what it saw: (a) ``EmotionDetector().detect()`` on the bundled astronaut.png,
(b) the bundled int8 TFLite and int8 ONNX default model classifying the same evenly spread FER-2013
PrivateTest faces, (c) a stream over the first frames of short_hamilton_clip.mp4. It exits 1 after
writing the JSON when something is wrong on its own (Haar fallback, TensorFlow imported, not the int8
models, no face found).

``compare`` checks the aarch64 result against the x86_64 one and prints a summary; exit 1 on failure.
int8 kernels differ between ARM (NEON) and x86 (AVX2/VNNI), so labels need not be bit-identical:
label agreement >= MIN_AGREEMENT and accuracies within MAX_ACC_DIFF are required.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

MIN_AGREEMENT = 0.97
MAX_ACC_DIFF = 0.02  # absolute: 2 percentage points
MIN_BOX_IOU = 0.9
BACKENDS = ("litert", "onnxruntime")
PARTS = ("sample", *BACKENDS, "stream")
BATCH = 32  # classify() batch: LiteRT pads a dynamic batch to a power of two


def _shared_data() -> Path:
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("EDGE_EMOTION_SHARED", root.parent / "shared" / "data"))


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _box(face) -> list[int]:
    return [int(v) for v in face.box]


# --------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    errors: list[str] = []

    def lap(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 2)
        return time.perf_counter()

    if platform.machine() == "aarch64" and "CPU implementer" not in Path("/proc/cpuinfo").read_text():
        # pytorch/cpuinfo (in ONNX Runtime and LiteRT) segfaults on an x86 /proc/cpuinfo
        print("ERROR: /proc/cpuinfo does not describe an ARM CPU (qemu-user shows the host's): run.sh puts an ARM "
              "one at ROOTFS/proc/cpuinfo, which qemu -L ROOTFS should show instead", file=sys.stderr)
        return 2
    t = time.perf_counter()
    import cv2
    import numpy as np

    import edge_emotion
    from edge_emotion import EmotionDetector

    t = lap("import", t)
    pkg_dir = Path(edge_emotion.__file__).resolve().parent
    out: dict = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "edge_emotion": {"version": edge_emotion.__version__, "location": str(pkg_dir)},
        "versions": {"numpy": np.__version__, "opencv": cv2.__version__,
                     "ai-edge-litert": _version("ai-edge-litert"), "onnxruntime": _version("onnxruntime")},
        "errors": errors,
        "timings_s": timings,
    }
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        raise SystemExit(f"unknown part(s) {sorted(parts - set(PARTS))}; choose from {PARTS}")
    out["parts"] = sorted(parts)
    if args.expect_package and not str(pkg_dir).startswith(str(Path(args.expect_package).resolve())):
        errors.append(f"edge_emotion was imported from {pkg_dir}, not from the installed wheel in {args.expect_package}")
    weights = sorted(p.name for p in (pkg_dir / "runtime" / "face_detection" / "weights").glob("*.tflite"))
    out["edge_emotion"]["detector_weights"] = weights

    summary = []
    data = _shared_data()
    if parts & {"sample", "stream"}:
        det = EmotionDetector(threads=args.threads)  # the default: bundled int8 model, YuNet
        fd = det.face_detector
        if fd.name != "yunet":
            errors.append(f"the default face detector is {fd.name!r}, not YuNet (the Haar fallback); bundled "
                          f"detector weights in the installed package: {weights or 'none'} (expected in "
                          "edge_emotion/runtime/face_detection/weights/ - are they in the wheel's package data?)")
        t = lap("load_default", t)

    # (a) the default detector on the bundled sample image
    if "sample" in parts:
        t = _sample(det, pkg_dir, out, errors, summary, t, lap)

    # (b) both int8 default models on the same real FER-2013 PrivateTest faces
    backends = [b for b in BACKENDS if b in parts]
    if backends:
        t = _fer(backends, data, args, out, errors, summary, t, lap)

    # (c) a video stream: the first frames of a real clip, every frame (a file source is not live)
    if "stream" in parts:
        t = _stream(det, data, args, out, errors, summary, t, lap)

    if "tensorflow" in sys.modules:
        errors.append("tensorflow was imported by the runtime")
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    timings["total"] = round(time.perf_counter() - t_start, 2)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"[{out['machine']}] " + "; ".join(summary) + f"; {timings}", flush=True)
    for e in errors:
        print(f"[{out['machine']}] ERROR: {e}", file=sys.stderr)
    return 1 if errors else 0


def _sample(det, pkg_dir, out, errors, summary, t, lap):
    import cv2
    import numpy as np

    sample = pkg_dir / "assets" / "astronaut.png"
    img = cv2.imread(str(sample))
    if img is None:
        errors.append(f"cannot read the bundled sample image {sample}")
        img = np.zeros((64, 64, 3), np.uint8)
    fd = det.face_detector
    faces = det.detect(img)
    out["sample"] = {
        "image": sample.name,
        "model": det.model_path.name,
        "backend": det.classifier.backend.name,
        "backend_version": det.classifier.backend.version(),
        "face_detector": fd.name,
        "face_detector_backend": getattr(getattr(fd, "backend", None), "name", None),
        "faces": [{"box": _box(f), "emotion": f.emotion, "confidence": round(f.confidence, 4),
                   "score": round(f.score, 4)} for f in faces],
    }
    if not faces:
        errors.append("no face found in the bundled astronaut.png")
    summary.append(f"{len(faces)} face(s) in {sample.name} ({fd.name})")
    return lap("sample_image", t)


def _fer(backends, data, args, out, errors, summary, t, lap):
    import numpy as np

    from edge_emotion import EmotionDetector

    meta = json.loads((data / "fer2013.json").read_text())
    class_names = meta["class_names"]
    with np.load(data / "fer2013.npz") as d:
        x_all, y_all = d["x_test"], d["y_test"]  # PrivateTest
    idx = np.unique(np.linspace(0, len(x_all) - 1, args.faces).round().astype(int))
    x, y = x_all[idx], y_all[idx].astype(int)
    out["fer"] = {"split": "PrivateTest (x_test)", "n": int(len(idx)), "first": int(idx[0]), "last": int(idx[-1]),
                  "labels": y.tolist(), "backends": {}}
    for name in backends:
        t0 = time.perf_counter()
        d_b = EmotionDetector(backend=name, threads=args.threads)
        t_load = time.perf_counter() - t0
        if sorted(d_b.labels) != sorted(class_names):
            errors.append(f"{name}: model labels {d_b.labels} are not FER-2013's {class_names}")
        if "int8" not in d_b.model_path.name:
            errors.append(f"{name}: the default model resolved to {d_b.model_path.name}, not the int8 artifact")
        t0 = time.perf_counter()
        emotions = []
        for s in range(0, len(x), BATCH):
            emotions += d_b.classify(list(x[s:s + BATCH]))  # 48x48 uint8 grayscale crops
        t_cls = time.perf_counter() - t0
        pred = [class_names.index(e.emotion) for e in emotions]
        probs = [[round(e.probabilities[c], 4) for c in class_names] for e in emotions]
        out["fer"]["backends"][name] = {
            "model": d_b.model_path.name,
            "backend_version": d_b.classifier.backend.version(),
            "pred": pred, "probs": probs,
            "accuracy": round(float(np.mean(np.array(pred) == y)), 6),
            "load_s": round(t_load, 2), "ms_per_face": round(1000 * t_cls / len(x), 3),
        }
        summary.append(f"{name} accuracy {out['fer']['backends'][name]['accuracy']:.4f} on {len(x)} faces")
        t = lap(f"fer_{name}", t)
    return t


def _stream(det, data, args, out, errors, summary, t, lap):
    clip = data / "scenes" / "short_hamilton_clip.mp4"
    frames = []
    for res in det.stream(str(clip), max_frames=args.frames):
        frames.append({"index": res.index,
                       "faces": [{"box": _box(f), "emotion": f.emotion, "track": f.track_id} for f in res.faces]})
    out["stream"] = {"clip": clip.name, "max_frames": args.frames, "frames": len(frames),
                     "faces_per_frame": [len(f["faces"]) for f in frames], "detail": frames}
    if len(frames) != args.frames:
        errors.append(f"stream: {len(frames)} frames decoded from {clip.name}, expected {args.frames}")
    summary.append(f"stream {len(frames)} frames, {sum(out['stream']['faces_per_frame'])} faces")
    return lap("stream", t)


# ----------------------------------------------------------------------------------------- compare
def _iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _merge(paths: list[str], fails: list[str]) -> dict:
    """One result from the JSON of one or more processes that ran different parts on the same interpreter."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    merged = {k: v for k, v in runs[0].items() if k not in PARTS and k != "fer"}
    merged["errors"], merged["timings_s"] = [], {}
    for i, r in enumerate(runs):
        if (r["machine"], r["python"], r["versions"]) != (runs[0]["machine"], runs[0]["python"], runs[0]["versions"]):
            fails.append(f"{paths[i]} comes from another interpreter than {paths[0]}")
        merged["errors"] += r["errors"]
        merged["timings_s"].update({(f"p{i + 1}." if len(runs) > 1 else "") + k: v for k, v in r["timings_s"].items()})
        for key in ("sample", "stream"):
            if key in r:
                merged[key] = r[key]
        if "fer" in r:
            if "fer" not in merged:
                merged["fer"] = {**r["fer"], "backends": dict(r["fer"]["backends"])}
            elif merged["fer"]["labels"] != r["fer"]["labels"]:
                fails.append(f"{paths[i]} classified another FER-2013 subset than the other process")
            else:
                merged["fer"]["backends"].update(r["fer"]["backends"])
    missing = [p for p in ("sample", "stream", "fer") if p not in merged]
    missing += [b for b in BACKENDS if b not in merged.get("fer", {}).get("backends", {})]
    if missing:
        fails.append(f"{merged['machine']}: no result for {', '.join(missing)} in {', '.join(paths)}")
    return merged


def compare(args: argparse.Namespace) -> int:
    fails: list[str] = []
    lines: list[str] = []
    ref = _merge([args.reference], fails)
    arm = _merge(args.candidate, fails)
    r_m, a_m = ref["machine"], arm["machine"]
    if a_m != "aarch64":
        fails.append(f"the emulated run reports platform.machine() = {a_m!r}, not 'aarch64'")
    for res in (ref, arm):
        fails += [f"{res['machine']}: {e}" for e in res["errors"]]
    if any(p not in res for res in (ref, arm) for p in ("sample", "stream", "fer")):
        return _report(lines, fails)
    lines.append(f"{a_m} (Python {arm['python']}) vs {r_m} (Python {ref['python']})")
    lines.append("  versions " + a_m + ": " + ", ".join(f"{k} {v}" for k, v in arm["versions"].items()))
    lines.append("  versions " + r_m + ": " + ", ".join(f"{k} {v}" for k, v in ref["versions"].items()))

    # (a) sample image
    rs, as_ = ref["sample"], arm["sample"]
    lines.append(f"  sample {as_['image']}: {a_m} {as_['model']} on {as_['backend']}, faces by {as_['face_detector']} "
                 f"on {as_['face_detector_backend']}")
    if len(rs["faces"]) != len(as_["faces"]):
        fails.append(f"sample image: {len(as_['faces'])} face(s) on {a_m}, {len(rs['faces'])} on {r_m}")
    for i, (rf, af) in enumerate(zip(rs["faces"], as_["faces"])):
        iou = _iou(rf["box"], af["box"])
        lines.append(f"    face {i}: {a_m} {af['emotion']} ({af['confidence']:.3f}) box {af['box']} | {r_m} "
                     f"{rf['emotion']} ({rf['confidence']:.3f}) box {rf['box']} | IoU {iou:.3f}")
        if af["emotion"] != rf["emotion"]:
            fails.append(f"sample image face {i}: {af['emotion']} on {a_m}, {rf['emotion']} on {r_m}")
        if iou < MIN_BOX_IOU:
            fails.append(f"sample image face {i}: box IoU {iou:.3f} < {MIN_BOX_IOU} ({af['box']} vs {rf['box']})")

    # (b) FER-2013 faces on both int8 models
    if ref["fer"]["labels"] != arm["fer"]["labels"]:
        fails.append("the two runs classified different FER-2013 subsets")
    y = ref["fer"]["labels"]
    n = len(y)
    for b in BACKENDS:
        rb, ab = ref["fer"]["backends"].get(b), arm["fer"]["backends"].get(b)
        if rb is None or ab is None:
            fails.append(f"{b}: missing from a run")
            continue
        same = sum(p == q for p, q in zip(rb["pred"], ab["pred"]))
        agree = same / n
        dacc = ab["accuracy"] - rb["accuracy"]
        dprob = max(abs(p - q) for pr, qr in zip(rb["probs"], ab["probs"]) for p, q in zip(pr, qr))
        lines.append(f"  {b} {ab['model']}, {n} PrivateTest faces: labels agree {same}/{n} = "
                     f"{100 * agree:.2f} %; accuracy {a_m} {100 * ab['accuracy']:.2f} % vs {r_m} "
                     f"{100 * rb['accuracy']:.2f} % ({100 * dacc:+.2f} pt); max |dp| {dprob:.4f}; "
                     f"{ab['ms_per_face']} ms/face emulated vs {rb['ms_per_face']} native")
        if ab["model"] != rb["model"]:
            fails.append(f"{b}: {a_m} ran {ab['model']}, {r_m} ran {rb['model']}")
        if agree < MIN_AGREEMENT:
            fails.append(f"{b}: {a_m} and {r_m} labels agree on {100 * agree:.2f} % of {n} faces (< {100 * MIN_AGREEMENT:.0f} %)")
        if abs(dacc) > MAX_ACC_DIFF + 1e-9:
            fails.append(f"{b}: accuracy {100 * ab['accuracy']:.2f} % on {a_m} vs {100 * rb['accuracy']:.2f} % on {r_m} "
                         f"(more than {100 * MAX_ACC_DIFF:.0f} points apart)")

    # (c) stream
    rst, ast = ref["stream"], arm["stream"]
    same_n = sum(p == q for p, q in zip(rst["faces_per_frame"], ast["faces_per_frame"]))
    # emotions of the faces in frames where both found the same number of faces (best first in both)
    paired = [(fr, fa) for r, a in zip(rst["detail"], ast["detail"]) if len(r["faces"]) == len(a["faces"])
              for fr, fa in zip(r["faces"], a["faces"])]
    pairs = [(fr["emotion"], fa["emotion"]) for fr, fa in paired]
    ious = [_iou(fr["box"], fa["box"]) for fr, fa in paired]
    lines.append(f"  stream {ast['clip']}: {ast['frames']} frames on {a_m}, {rst['frames']} on {r_m}; faces "
                 f"{sum(ast['faces_per_frame'])} vs {sum(rst['faces_per_frame'])}; same face count on {same_n}/"
                 f"{min(ast['frames'], rst['frames'])} frames; same emotion on {sum(p == q for p, q in pairs)}/"
                 f"{len(pairs)} of their faces (box IoU min {min(ious, default=1):.3f}, mean "
                 f"{sum(ious) / max(len(ious), 1):.3f}; the fp32 detector's boxes differ by a pixel or so)")
    if ast["frames"] != rst["frames"]:
        fails.append(f"stream: {ast['frames']} frames on {a_m}, {rst['frames']} on {r_m}")
    if sum(rst["faces_per_frame"]) and not sum(ast["faces_per_frame"]):
        fails.append(f"stream: no face in any frame on {a_m} ({sum(rst['faces_per_frame'])} on {r_m})")

    lines.append("  check timings (s): " + a_m + " " + json.dumps(arm["timings_s"]) + "; " + r_m + " "
                 + json.dumps(ref["timings_s"]))
    return _report(lines, fails)


def _report(lines: list[str], fails: list[str]) -> int:
    print("\n".join(lines))
    if fails:
        print(f"\narm64 check FAILED ({len(fails)}):", file=sys.stderr)
        for f in fails:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("arm64 check OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the checks on this interpreter and write JSON")
    r.add_argument("--out", required=True)
    r.add_argument("--faces", type=int, default=300, help="FER-2013 PrivateTest faces, evenly spread")
    r.add_argument("--frames", type=int, default=40, help="frames of short_hamilton_clip.mp4")
    r.add_argument("--threads", type=int, default=1, help="runtime threads")
    r.add_argument("--parts", default=",".join(PARTS),
                   help="comma-separated subset of %(default)s (run.sh splits the emulated run in two processes)")
    r.add_argument("--expect-package", help="fail unless edge_emotion is imported from this directory")
    c = sub.add_parser("compare", help="compare an aarch64 result with the x86_64 reference")
    c.add_argument("reference")
    c.add_argument("candidate", nargs="+", help="the aarch64 result (several: one per process, merged)")
    args = p.parse_args(argv)
    return run(args) if args.cmd == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
