"""What a face crop's resampling costs in accuracy: area averaging vs bilinear sampling of large faces.

The models learnt on FER-2013's 48x48 faces. A camera sees faces at 100-600 px, and the runtime cuts
them down to the model's size, with area averaging (``antialias=True``, models whose metadata says
``resize="area"``) or with bilinear sampling alone (``antialias=False``, ``resize="bilinear"``, the default). Two measurements, the bundled default
classifier:

1. **Accuracy**: each PrivateTest face is enlarged (bicubic) to S x S pixels (non-integer factors)
   and cut back by ``crop_face`` over its exact box. An enlarged FER face has no detail finer than
   its 48 px, so this shows what each method costs when aliasing cannot occur.
2. **Stability on real faces**: every face BlazeFace finds in the real scene photos (faces of
   60-400 px, with their own fine detail) is cut 16 times with its box moved by up to 1 px and
   resized by up to 1 % (a detector's jitter between frames); reported: how often the top emotion
   differs from the unmoved crop's, and the mean total-variation distance between the probabilities.

    python -m benchmarks.crop_resampling [--sizes 100 150 250 500] [--limit N] [--json OUT] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np

from benchmarks.conftest import SHARED


def accuracy(clf, crops: list[np.ndarray], y: np.ndarray) -> float:
    from edge_emotion.predict import classifier_predictor, predict_images

    return float((predict_images(classifier_predictor(clf, order="bgr"), np.stack(crops)).argmax(1) == y).mean())


def run(sizes: list[int], limit: int | None = None, threads: int = 2) -> dict:
    from edge_emotion.runtime.classifier import EmotionClassifier
    from edge_emotion.runtime.crop import crop_face
    from edge_emotion.runtime.zoo import measured_file, resolve_model

    with np.load(SHARED / "fer2013.npz") as d:
        x, y = d["x_test"], d["y_test"].astype(np.int64)
    x = x.reshape(len(x), 48, 48)
    if limit:
        x, y = x[:limit], y[:limit]
    clf = EmotionClassifier(resolve_model(None), threads=threads)
    size = tuple(clf.meta.input_size)
    native = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in x]
    out = {"classifier": measured_file(clf.path), "n": int(len(y)), "input_size": list(size),
           "native_accuracy": accuracy(clf, native, y), "sizes": {}}
    for s in sizes:
        big = [cv2.resize(f, (s, s), interpolation=cv2.INTER_CUBIC) for f in native]
        row = {}
        for key, aa in (("area", True), ("bilinear", False)):
            crops = [crop_face(f, (0, 0, s, s), size, margin=0.0, antialias=aa) for f in big]
            diff = float(np.mean([np.abs(c.astype(np.float32) - n).mean() for c, n in zip(crops, native)]))
            row[key] = {"accuracy": accuracy(clf, crops, y), "mean_abs_diff_to_original": diff}
        out["sizes"][str(s)] = row
    out["stability"] = stability(clf, size)
    return out


SCENES = ("astronaut.png", "obama-1080p.jpg", "obama_and_biden.jpg", "two_people.jpg")


def stability(clf, size: tuple[int, int], n_jitter: int = 16, seed: int = 0) -> dict:
    """Top-1 flips and probability change under a detector's sub-pixel jitter, area vs bilinear, on real photos."""
    from edge_emotion.runtime.crop import crop_face
    from edge_emotion.runtime.face_detection import create_face_detector

    det = create_face_detector("auto", threads=2)
    rng = np.random.default_rng(seed)
    faces = []
    for name in SCENES:
        frame = cv2.imread(str(SHARED / "scenes" / name))
        faces += [(frame, (b.x, b.y, b.w, b.h)) for b in det.detect(frame)]
    faces += [(cv2.imread(str(p)), (b.x, b.y, b.w, b.h)) for p in sorted((SHARED / "scenes" / "pascal_voc_faces").glob("*.jpg"))
              for b in det.detect(cv2.imread(str(p)))]
    margin = clf.meta.crop_margin
    jit = rng.uniform(-1, 1, (len(faces), n_jitter, 3))
    out = {"faces": len(faces), "face_px": [float(min(b[2] for _, b in faces)), float(max(b[2] for _, b in faces))],
           "jitters_per_face": n_jitter}
    for key, aa in (("area", True), ("bilinear", False)):
        flips, tv = [], []
        for (frame, (x, y, w, h)), j in zip(faces, jit):
            crops = [crop_face(frame, (x, y, w, h), size, margin, antialias=aa)]
            crops += [crop_face(frame, (x + dx, y + dy, w * (1 + ds / 100), h * (1 + ds / 100)), size, margin, antialias=aa)
                      for dx, dy, ds in j]
            p = clf.predict(clf.preprocess(crops))
            flips.append(float((p[1:].argmax(1) != p[0].argmax()).mean()))
            tv.append(float(0.5 * np.abs(p[1:] - p[0]).sum(1).mean()))
        out[key] = {"top1_changed": float(np.mean(flips)), "mean_tv_distance": float(np.mean(tv))}
    return out


def markdown(r: dict) -> str:
    lines = [f"Crop resampling, {r['classifier']['file']} on {r['n']} PrivateTest faces enlarged to S px and cut back to "
             f"{r['input_size'][0]} px (original faces: {r['native_accuracy']:.2%}).", "",
             "| face size S | area averaging | bilinear sampling | difference | grey levels off the original (area / bilinear) |",
             "|---:|---:|---:|---:|---:|"]
    for s, row in r["sizes"].items():
        a, b = row["area"], row["bilinear"]
        lines.append(f"| {s} px | {a['accuracy']:.2%} | {b['accuracy']:.2%} | {100 * (a['accuracy'] - b['accuracy']):+.2f} pt | "
                     f"{a['mean_abs_diff_to_original']:.2f} / {b['mean_abs_diff_to_original']:.2f} |")
    st = r["stability"]
    lines += ["", f"Stability on {st['faces']} real faces ({st['face_px'][0]:.0f}-{st['face_px'][1]:.0f} px) from the scene photos, "
              f"{st['jitters_per_face']} jittered boxes each (up to 1 px, 1 %):", "",
              "| resampling | top emotion changed | mean change of the probabilities (TV distance) |", "|---|---:|---:|"]
    for key in ("area", "bilinear"):
        lines.append(f"| {key} | {st[key]['top1_changed']:.2%} | {st[key]['mean_tv_distance']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 150, 250, 500], help="face sizes in pixels (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="only the first N test faces")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the results as JSON")
    p.add_argument("--markdown", default=None, help="write the table as Markdown")
    a = p.parse_args(argv)
    r = run(a.sizes, a.limit, a.threads)
    print(markdown(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
