"""Does eye-based alignment of face crops help? Measured on real FER-2013 PrivateTest faces.

Each 48x48 test face is placed, upscaled to 128x128, in the middle of a 256x256 frame; the full pipeline (the
shipped face detector -> crop -> classifier) runs with ``align=False`` and ``align=True``; accuracy is compared on
the faces found in both runs.

    python -m benchmarks.alignment [--limit N] [--detector NAME] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np

from benchmarks.conftest import SHARED


def main(argv=None) -> int:
    from edge_emotion import EmotionDetector
    from edge_emotion.runtime.zoo import measured_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--detector", default="auto", help="face detector (default: the shipped one)")
    a = p.parse_args(argv)
    with np.load(SHARED / "fer2013.npz") as d:
        x, y = d["x_test"], d["y_test"]
    if a.limit:
        x, y = x[: a.limit], y[: a.limit]
    plain = EmotionDetector(threads=2, face_detector=a.detector)
    aligned = EmotionDetector(threads=2, face_detector=a.detector, align=True)
    res = {"plain": [], "aligned": []}
    for img, label in zip(x, y):
        frame = np.zeros((256, 256), np.uint8)
        frame[64:192, 64:192] = cv2.resize(img, (128, 128), interpolation=cv2.INTER_CUBIC)
        for key, det in (("plain", plain), ("aligned", aligned)):
            faces = det.detect(frame)
            res[key].append(None if not faces else det.labels.index(faces[0].emotion) == label)
    both = [i for i in range(len(y)) if res["plain"][i] is not None and res["aligned"][i] is not None]
    out = {"classifier": measured_file(plain.classifier.path), "face_detector": a.detector,
           "n_images": int(len(y)), "faces_found": len(both),
           "accuracy_plain": float(np.mean([res["plain"][i] for i in both])),
           "accuracy_aligned": float(np.mean([res["aligned"][i] for i in both]))}
    print(json.dumps(out, indent=1))
    if a.json:
        open(a.json, "w").write(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
