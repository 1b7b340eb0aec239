"""Face detection: speed against an earlier commit's code, recall, and small faces in large frames, in one run.

    python -m benchmarks.face_detection [--baseline REF] [--rounds 5] [--json OUT] [--markdown OUT]

Each configuration runs in its own worker process: the baseline from ``git archive REF`` (default: the
commit before issue #16's work), the others from this checkout. The workers take turns, a round each,
so a slow or noisy moment of the machine hits every configuration alike; each round times
``EmotionDetector.detect()`` one frame at a time over the sample clip. Reported: end-to-end FPS
(median over rounds) and its ratio to the baseline, the face detector's own time per frame, faces
found on the clip, and recall on ``pascal_voc_faces`` (ground truth at IoU >= 0.3) with the
detections that match no ground-truth face.

Photos: each face detector on the ``pascal_voc_faces`` photos as they are (recall, unmatched, ms per photo).

Crowds: there are no crowd photos with ground truth here, so the ``pascal_voc_faces`` photos (43 boxed
faces, 30-120 px) are laid out at their own size in k x k mosaics of 500-pixel cells: the same faces in
frames of 500, 1000, 1500 and 2000 pixels (k = 4 repeats photos to fill the grid; every face is counted
once per appearance). For each size, YuNet (the default) and BlazeFace full-range: recall, unmatched
detections and time per frame with ``high_res`` off and on. ``auto`` switches it on from
``HIGH_RES_MIN_SIDE`` pixels.

Streams: ``stream()`` with a full detection every N frames, boxes held or searched near the last faces.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCENES = ROOT.parent / "shared" / "data" / "scenes"
CLIP = SCENES / "short_hamilton_clip.mp4"
BASELINE = "fd071fd"  # main before issue #16 (face detection twice as fast)
INT8 = "<int8 export>"  # stands for the int8 detector the driver exports before the workers start
log = logging.getLogger("benchmarks.face_detection")

# name -> (code, BlazeFaceDetector keyword arguments (or "detector": a create_face_detector name and its
# arguments) or None for the default EmotionDetector, what it is)
CONFIGS: dict[str, tuple[str, dict | None, str]] = {
    "baseline": ("baseline", None, "the code before #16: BlazeFace full-range, letterbox by one INTER_AREA resize into 192x192"),
    "default": ("current", None, "EmotionDetector() as shipped: YuNet, the frame's long side at 224 network pixels (a 640x360 "
                "frame at 128x224; model rewritten in memory)"),
    "one_pass": ("current", None, "as default, with the default model's one-pass int8 export (the classifier cost the "
                 "baseline had: the shipped model averages each face with its mirror image, twice the classifier's work)"),
    "yunet320": ("current", {"detector": "yunet", "input_side": 320}, "as default, more pixels: YuNet with the long side at "
                 "320 (`detector_side=320`; a 640x360 frame at 192x320)"),
    "blazeface": ("current", {}, "BlazeFace full-range as #16 tuned it (`face_detector='blazeface'`): fast letterbox, only "
                  "candidates decoded, fit='aspect' (a 640x360 frame at 160x192)"),
    "square": ("current", {"fit": "square"}, "as blazeface with a square 192x192 input"),
    "sparse": ("current", {"variant": "full_sparse"}, "as blazeface, with the sparse full-range weights (the same network, "
               "sparse kernels in XNNPACK)"),
    "side160": ("current", {"input_side": 160}, "as blazeface, fewer pixels: the long side at 160 network pixels "
                "(`detector_side=160`; a 640x360 frame at 128x160)"),
    "side256": ("current", {"input_side": 256}, "as blazeface, more pixels: the long side at 256 (a 640x360 frame at 192x256)"),
    "int8": ("current", {"model_path": INT8}, "as blazeface, with BlazeFace full-range converted to full int8 "
             "(`edge-emotion export-detector -f tflite -p int8`), calibrated on every 3rd clip frame and the scene photos"),
}


# ----------------------------------------------------------------------------- worker side
def _frames(n: int | None) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(CLIP))
    out = []
    while n is None or len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def _xywh(faces) -> np.ndarray:
    return np.array([[f.x, f.y, f.w, f.h] for f in faces], float).reshape(-1, 4)


def compare(pairs) -> dict:
    """``pairs`` of (reference boxes, boxes), both (N, 4) x, y, w, h per frame: reference boxes with no box at
    IoU >= 0.3 (``missed``), boxes with no reference (``extra``), the matched IoUs and the reference count."""
    from edge_emotion.runtime.face_detection import iou_xywh

    missed = extra = total = 0
    ious: list[float] = []
    for a, b in pairs:
        a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
        total += len(a)
        if len(a) and len(b):
            m = iou_xywh(a, b)
            missed += int((m.max(1) < 0.3).sum())
            extra += int((m.max(0) < 0.3).sum())
            ious += [float(v) for v in m.max(1) if v >= 0.3]
        else:
            missed, extra = missed + len(a), extra + len(b)
    return {"missed": missed, "extra": extra, "ious": ious, "total": total}


def _recall(detect) -> dict:
    import cv2

    gt = json.loads((SCENES / "pascal_voc_faces" / "face_boxes.json").read_text())["images"]
    c = compare((np.array(rec["faces"], float), _xywh(detect(cv2.imread(str(SCENES / "pascal_voc_faces" / name)))))
                for name, rec in gt.items())
    return {"found": c["total"] - c["missed"], "total": c["total"], "unmatched": c["extra"]}


def worker(spec: dict) -> None:
    """Serve timing requests on stdin/stdout (one JSON object per line) for one configuration."""
    logging.disable(logging.WARNING)
    from edge_emotion import EmotionDetector

    kwargs = spec.get("detector")
    model = {"model": spec["model"]} if spec.get("model") else {}
    if kwargs is None:
        det = EmotionDetector(threads=spec["threads"], **model)
    else:
        from edge_emotion.runtime.face_detection import create_face_detector

        kwargs = dict(kwargs)
        name = kwargs.pop("detector", None)
        if name is None:  # BlazeFace full-range with other settings (variant="full_sparse" picks the sparse weights)
            from edge_emotion.runtime.face_detection.blazeface import BlazeFaceDetector

            fd = BlazeFaceDetector(threads=spec["threads"], **kwargs)
        else:
            fd = create_face_detector(name, threads=spec["threads"], **kwargs)
        det = EmotionDetector(threads=spec["threads"], face_detector=fd, **model)
    frames = _frames(spec.get("frames"))
    fd = det.face_detector
    for f in frames[:20]:  # warm-up: every input shape the clip needs is built here
        det.detect(f)
    import edge_emotion

    print(json.dumps({"ready": len(frames), "code": str(Path(edge_emotion.__file__).parent)}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "round":
            t0 = time.perf_counter()
            faces = [len(det.detect(f)) for f in frames]
            t1 = time.perf_counter()
            for f in frames:
                fd.detect(f)
            t2 = time.perf_counter()
            out = {"detect_s": t1 - t0, "detector_s": t2 - t1, "faces": int(sum(faces)), "frames": len(frames)}
        elif cmd["cmd"] == "quality":
            boxes = [_xywh(fd.detect(f)).tolist() for f in frames]
            out = {"recall": _recall(fd.detect), "clip_boxes": boxes}
        else:
            break
        print(json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- driver side
class Worker:
    def __init__(self, name: str, code_dir: Path, spec: dict) -> None:
        self.name = name
        env = dict(os.environ, PYTHONPATH=f"{code_dir}{os.pathsep}{ROOT}")
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.face_detection", "--worker", json.dumps(spec)],
                                     cwd=str(code_dir), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self._read()
        if Path(self.ready["code"]).resolve() != (code_dir / "edge_emotion").resolve():
            raise RuntimeError(f"worker {name} imported {self.ready['code']}, not the code under {code_dir}")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} ended (exit code {self.proc.wait()}); run it alone to see why")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def extract(ref: str, dest: Path) -> Path:
    """``edge_emotion/`` as committed at ``ref``, unpacked under ``dest``."""
    tar = dest / "code.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(tar), ref, "edge_emotion"], cwd=ROOT, check=True)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    return dest


def _agreement(ref: list, got: list) -> dict:
    c = compare(zip(ref, got))
    return {"missed": c["missed"], "extra": c["extra"], "median_iou": float(np.median(c["ious"])) if c["ious"] else None}


def calibration_frames(clip: list[np.ndarray]) -> list[np.ndarray]:
    """What the int8 detector is calibrated on: every 3rd ``clip`` frame and the scene photos (not
    pascal_voc_faces, which scores recall)."""
    import cv2

    photos = [cv2.imread(str(SCENES / n)) for n in ("obama-1080p.jpg", "obama_and_biden.jpg", "two_people.jpg", "astronaut.png")]
    return clip[::3] + photos


def int8_detector(dest: Path) -> tuple[Path, dict]:
    """The full-range detector exported to int8 TFLite in ``dest``, and its validation against the bundled fp32
    model on the clip and the scene photos (the exporter's gate; here reported, not enforced, so the
    benchmark shows a rejected export's figures too)."""
    import cv2

    from edge_emotion.export.detector import export_int8_tflite, validate_detector
    from edge_emotion.runtime.face_detection.blazeface import BlazeFaceDetector

    clip = _frames(None)
    path = export_int8_tflite("full", dest / "face_detection_full_range_int8.tflite", calibration_frames(clip))
    images = clip + [cv2.imread(str(p)) for p in sorted((SCENES / "pascal_voc_faces").glob("*.jpg"))]
    v = validate_detector(BlazeFaceDetector("full"), BlazeFaceDetector("full", model_path=path), images, "int8")
    log.info("int8 detector: %s -> %s", v.summary(), "passes" if v.passed else "REJECTED by the exporter's gate")
    return path, {**v.to_dict(), "size_bytes": path.stat().st_size}


def one_pass_classifier(dest: Path) -> Path:
    """The bundled default's Keras source exported to int8 TFLite without the flip averaging (as bundled before it)."""
    from edge_emotion.datasets import DEFAULT_DATA
    from edge_emotion.export import export_model
    from edge_emotion.runtime.zoo import artifact_path, load_index

    src = artifact_path(load_index()["default"], "keras")
    res = export_model(src, "tflite", "int8", out=dest, data=DEFAULT_DATA, show_progress=False)
    log.info("one-pass classifier: %s", res.summary().splitlines()[0])
    return res.path


def run(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = extract(args.baseline, Path(tmp))
        workers = []
        int8 = int8_detector(Path(tmp)) if "int8" in args.configs else None
        one_pass = one_pass_classifier(Path(tmp)) if "one_pass" in args.configs else None
        for name in args.configs:
            code, kwargs, _ = CONFIGS[name]
            if kwargs and kwargs.get("model_path") == INT8:
                kwargs = {**kwargs, "model_path": str(int8[0])}
            spec = {"detector": kwargs, "threads": args.threads, "frames": args.frames,
                    "model": str(one_pass) if name == "one_pass" else None}
            workers.append(Worker(name, base_dir if code == "baseline" else ROOT, spec))
        try:
            rounds: dict[str, list[dict]] = {w.name: [] for w in workers}
            for r in range(args.rounds):
                for w in workers:
                    rounds[w.name].append(w.ask("round"))
                log.info("round %d/%d: %s", r + 1, args.rounds, ", ".join(
                    f"{k} {v[-1]['frames'] / v[-1]['detect_s']:.1f} FPS" for k, v in rounds.items()))
            quality = {w.name: w.ask("quality") for w in workers}
        finally:
            for w in workers:
                w.close()
    ref_name = args.configs[0]
    # the VM's speed drifts between rounds by more than some rows differ (+-20 %): each round's FPS is divided
    # by the reference's in the same round, and the speedup is the median of those paired ratios
    fps_rounds = {name: [r["frames"] / r["detect_s"] for r in rs] for name, rs in rounds.items()}
    rows = []
    for name in args.configs:
        rs = rounds[name]
        fps = float(np.median(fps_rounds[name]))
        rows.append({
            "config": name, "what": CONFIGS[name][2],
            "fps": fps, "ms_per_frame": 1000 / fps,
            "detector_ms": float(np.median([1000 * r["detector_s"] / r["frames"] for r in rs])),
            "clip_faces": rs[0]["faces"], "frames": rs[0]["frames"],
            **{f"recall_{k}": v for k, v in quality[name]["recall"].items()},
            "vs_" + ref_name: _agreement(quality[ref_name]["clip_boxes"], quality[name]["clip_boxes"]),
            "fps_rounds": [round(f, 1) for f in fps_rounds[name]],
            "speedup": float(np.median([f / b for f, b in zip(fps_rounds[name], fps_rounds[ref_name])])),
        })
    return {"baseline": args.baseline, "rounds": args.rounds, "threads": args.threads, "clip": CLIP.name, "rows": rows,
            **({"int8_validation": int8[1]} if int8 else {})}


def _mosaics(k: int, cell: int = 500) -> list[tuple[np.ndarray, np.ndarray]]:
    import cv2

    gt = json.loads((SCENES / "pascal_voc_faces" / "face_boxes.json").read_text())["images"]
    items = [(cv2.imread(str(SCENES / "pascal_voc_faces" / n)), np.array(r["faces"], float).reshape(-1, 4)) for n, r in gt.items()]
    per = k * k
    if per > len(items):  # fill the grid by repeating photos: every face still counted where it appears
        items = (items * -(-per // len(items)))[:per]
    out = []
    for g in range(0, len(items), per):
        canvas, boxes = np.zeros((k * cell, k * cell, 3), np.uint8), []
        for j, (img, b) in enumerate(items[g:g + per]):
            r, c = divmod(j, k)
            canvas[r * cell:r * cell + img.shape[0], c * cell:c * cell + img.shape[1]] = img
            boxes.append(b + [c * cell, r * cell, 0, 0])
        out.append((canvas, np.concatenate(boxes)))
    return out


def crowds(threads: int, sizes=(1, 2, 3, 4)) -> list[dict]:
    """Recall, unmatched detections and time per frame, per frame size, of the default (YuNet: one pass at 224 network
    pixels, or with ``high_res`` at the frame's own resolution) and of BlazeFace full-range (one 192-pixel pass, or
    with ``high_res`` the tile pyramid)."""
    from edge_emotion.runtime.face_detection.base import HIGH_RES_MIN_SIDE
    from edge_emotion.runtime.face_detection.blazeface import BlazeFaceDetector
    from edge_emotion.runtime.face_detection.yunet import YuNetDetector

    calls = {"n": 0}
    dets = {("yunet", m): YuNetDetector(threads=threads, high_res=m, max_faces=256) for m in ("off", "on")}
    tiled = BlazeFaceDetector("full", threads=threads, high_res="on", max_faces=256)
    inner = tiled.detect_region

    def counting(*a, **k):
        calls["n"] += 1
        return inner(*a, **k)

    tiled.detect_region = counting
    dets.update({("blazeface", "off"): BlazeFaceDetector("full", threads=threads, high_res="off", max_faces=256),
                 ("blazeface", "on"): tiled})
    rows = []
    for k in sizes:
        frames = _mosaics(k)
        for (name, mode), det in dets.items():
            times, pairs = [], []
            for img, boxes in frames:
                det.detect(img)  # builds the input shapes this size needs
                calls["n"] = 0
                t0 = time.perf_counter()
                pred = det.detect(img)
                times.append(time.perf_counter() - t0)
                pairs.append((boxes, _xywh(pred)))
            c = compare(pairs)
            found, total, unmatched = c["total"] - c["missed"], c["total"], c["extra"]
            rows.append({"side": k * 500, "frames": len(frames), "detector": name, "high_res": mode, "found": found,
                         "total": total, "unmatched": unmatched, "ms_per_frame": 1000 * float(np.median(times)),
                         "calls_per_frame": calls["n"] if det is tiled else 1,
                         "auto_uses_it": k * 500 >= HIGH_RES_MIN_SIDE})
            log.info("crowds %dpx %s high_res=%s: %d/%d, %d unmatched, %.1f ms", k * 500, name, mode, found, total,
                     unmatched, rows[-1]["ms_per_frame"])
    return rows


def photos(threads: int, repeats: int = 20) -> list[dict]:
    """Each detector on the ``pascal_voc_faces`` photos as they are (about 500x375): recall, unmatched detections and
    the mean over the photos of each photo's median time."""
    import cv2

    from edge_emotion.runtime.face_detection import create_face_detector

    gt = json.loads((SCENES / "pascal_voc_faces" / "face_boxes.json").read_text())["images"]
    imgs = [(cv2.imread(str(SCENES / "pascal_voc_faces" / n)), np.array(r["faces"], float).reshape(-1, 4)) for n, r in gt.items()]
    rows = []
    for name in ("yunet", "blazeface_full", "blazeface_full_sparse", "blazeface_short", "haar"):
        det = create_face_detector(name, threads=threads)
        pairs, ms = [], []
        for img, boxes in imgs:
            det.detect(img)
            ts = []
            for _ in range(repeats if name != "haar" else 3):
                t0 = time.perf_counter()
                pred = det.detect(img)
                ts.append(time.perf_counter() - t0)
            ms.append(1000 * float(np.median(ts)))
            pairs.append((boxes, _xywh(pred)))
        c = compare(pairs)
        rows.append({"detector": name, "found": c["total"] - c["missed"], "total": c["total"], "unmatched": c["extra"],
                     "ms_per_photo": float(np.mean(ms))})
        log.info("photos %s: %d/%d, %d unmatched, %.1f ms", name, *[rows[-1][k] for k in ("found", "total", "unmatched",
                                                                                           "ms_per_photo")])
    return rows


def streams(threads: int, every=(3, 5, 10)) -> list[dict]:
    """Tracker-guided detection in ``stream()`` on the clip: FPS, and the faces of detect-every-frame that a
    stream detecting every N frames misses (no box at IoU >= 0.3 in the same frame) or adds."""
    from edge_emotion import EmotionDetector

    det = EmotionDetector(threads=threads)

    def run_stream(n: int, between: str) -> tuple[list[np.ndarray], float]:
        boxes = []
        with det.stream(CLIP, detect_every=n, between=between) as s:
            t0 = time.perf_counter()
            for r in s:
                boxes.append(np.array([f.box for f in r.faces], float).reshape(-1, 4))
            return boxes, len(boxes) / (time.perf_counter() - t0)

    ref, ref_fps = run_stream(1, "hold")
    rows = [{"detect_every": 1, "between": "-", "fps": ref_fps, "faces": int(sum(map(len, ref))), "missed": 0, "extra": 0,
             "missed_pct": 0.0}]
    for n in every:
        for between in ("hold", "near"):
            got, fps = run_stream(n, between)
            c = compare(zip(ref, got))
            missed, extra = c["missed"], c["extra"]
            rows.append({"detect_every": n, "between": between, "fps": fps, "faces": int(sum(map(len, got))),
                         "missed": missed, "extra": extra, "missed_pct": 100 * missed / max(1, rows[0]["faces"])})
            log.info("stream detect_every=%d between=%s: %.1f FPS, missed %d, extra %d", n, between, fps, missed, extra)
    return rows


def to_markdown(res: dict) -> str:
    lines: list[str] = []
    if res.get("rows"):
        ref = res["rows"][0]["config"]
        lines += [f"Face detection on `{res['clip']}` ({res['rows'][0]['frames']} frames, 640x360, one frame at a time, "
                  f"{res['threads']} threads), median of {res['rounds']} interleaved rounds; baseline = `{res['baseline']}`. "
                  f"`x {ref}`: the median over rounds of each round's FPS divided by {ref}'s in the same round.",
                  "", f"| config | detect() FPS | x {ref} | ms/frame | detector ms | clip faces | missed / extra vs "
                  f"{ref} (IoU<0.3) | median IoU | pascal_voc_faces recall | unmatched |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["rows"]:
            ag = r["vs_" + ref]
            lines.append(f"| {r['config']} | {r['fps']:.1f} | {r['speedup']:.2f} | {r['ms_per_frame']:.2f} | {r['detector_ms']:.2f} "
                         f"| {r['clip_faces']} | {ag['missed']} / {ag['extra']} | {ag['median_iou']:.3f} "
                         f"| {r['recall_found']}/{r['recall_total']} | {r['recall_unmatched']} |")
        lines += ["", *[f"- `{r['config']}`: {r['what']}" for r in res["rows"]], ""]
        if res.get("int8_validation"):
            v = res["int8_validation"]
            lines += [f"int8 detector against the bundled fp32 one (the exporter's gate) on the clip and pascal_voc_faces, "
                      f"{v['images']} images: {v['found']}/{v['reference_faces']} faces found again ({100 * v['recall']:.1f} %, "
                      f"gate {100 * v['recall_gate']:.0f} %), {v['extra']} extra, median IoU {v['median_iou']:.3f}, "
                      f"{v['size_bytes'] / 1e6:.2f} MB: **{'passes' if v['passed'] else 'rejected'}**.", ""]
    if res.get("photos"):
        lines += ["Each detector on the `pascal_voc_faces` photos as they are (about 500x375; mean of each photo's median "
                  "time).", "", "| detector | recall | unmatched | ms per photo |", "|---|---:|---:|---:|"]
        for r in res["photos"]:
            lines.append(f"| {r['detector']} | {r['found']}/{r['total']} | {r['unmatched']} | {r['ms_per_photo']:.1f} |")
        lines.append("")
    if res.get("crowds"):
        lines += ["Small faces in large frames: `pascal_voc_faces` photos at their own size in k x k mosaics of 500-px cells "
                  "(median time per frame). high_res on: YuNet runs the frame at its own resolution, BlazeFace adds the "
                  "tile pyramid.", "",
                  "| frame side | frames | detector | high_res | recall | unmatched | ms/frame | network calls/frame | auto |",
                  "|---:|---:|---|---|---:|---:|---:|---:|---|"]
        for r in res["crowds"]:
            lines.append(f"| {r['side']} | {r['frames']} | {r['detector']} | {r['high_res']} | {r['found']}/{r['total']} | {r['unmatched']} "
                         f"| {r['ms_per_frame']:.1f} | {r['calls_per_frame']} | {'on' if r['auto_uses_it'] else 'off'} |")
        lines.append("")
    if res.get("streams"):
        ref = res["streams"][0]
        lines += [f"Streams: `stream(clip, detect_every=N)`, every frame of the clip, decode included; "
                  f"missed / extra against detecting every frame ({ref['faces']} faces, IoU < 0.3). `hold`: boxes reused "
                  "between detections; `near`: searched around the last faces (96x96 input each).", "",
                  "| detect_every | between | FPS | faces | missed | missed % | extra |", "|---:|---|---:|---:|---:|---:|---:|"]
        for r in res["streams"]:
            lines.append(f"| {r['detect_every']} | {r['between']} | {r['fps']:.1f} | {r['faces']} | {r['missed']} "
                         f"| {r['missed_pct']:.1f} | {r['extra']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default=BASELINE, help="git ref of the code to compare against (default: %(default)s)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                   help="configurations, the first is the reference (default: all)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default: %(default)s)")
    p.add_argument("--frames", type=int, default=None, help="clip frames per round (default: all 275)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per runtime (default: %(default)s)")
    p.add_argument("--no-speed", action="store_true", help="skip the timing against the baseline")
    p.add_argument("--no-crowds", action="store_true", help="skip the high-resolution (mosaic) measurements")
    p.add_argument("--no-streams", action="store_true", help="skip the tracker-guided stream measurements")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write the results as JSON")
    p.add_argument("--markdown", default=None, metavar="OUT", help="write the table as Markdown")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from edge_emotion.runtime.zoo import measured_file, resolve_model

    res = {"rows": []} if args.no_speed else run(args)
    # the classifier this code's rows, crowds and streams ran (the baseline runs its own; one_pass a one-pass export)
    res["classifier"] = measured_file(resolve_model(None))
    res["photos"] = photos(args.threads)
    if not args.no_crowds:
        res["crowds"] = crowds(args.threads)
    if not args.no_streams:
        res["streams"] = streams(args.threads)
    md = to_markdown(res)
    print(md)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
