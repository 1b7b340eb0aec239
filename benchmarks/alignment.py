"""Does eye-based alignment of face crops help? Measured on real FER-2013 PrivateTest faces.

Each 48x48 test face is placed, upscaled to 128x128, in the middle of a 256x256 frame; the full pipeline (the
shipped face detector -> crop -> classifier) runs with ``align=False`` and ``align=True``; accuracy is compared on
the faces found in both runs.

The same frames measure the crop framing of each detector's boxes (``framing``): the classifier's crop margins were
measured on BlazeFace boxes, and YuNet's boxes (forehead to chin) are mapped onto BlazeFace's
(:data:`edge_emotion.runtime.face_detection.yunet.TO_BLAZEFACE`). The pipeline runs on BlazeFace's boxes, on
YuNet's mapped boxes (the default) and on YuNet's own boxes (``native_boxes=True``); accuracy is compared on the
faces that BlazeFace and YuNet both find.

    python -m benchmarks.alignment [--limit N] [--detector NAME] [--no-framing] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.conftest import SHARED


def _accuracy(res: dict[str, list], keys: tuple[str, ...]) -> tuple[int, dict[str, float]]:
    """(faces every configuration in ``keys`` found, each one's accuracy on those faces)."""
    n = len(res[keys[0]])
    common = [i for i in range(n) if all(res[k][i] is not None for k in keys)]
    return len(common), {k: float(np.mean([res[k][i] for i in common])) if common else float("nan") for k in keys}


def main(argv=None) -> int:
    from edge_emotion import EmotionDetector
    from edge_emotion.runtime.face_detection.yunet import YuNetDetector
    from edge_emotion.runtime.zoo import measured_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--detector", default="auto", help="face detector (default: the shipped one)")
    p.add_argument("--no-framing", action="store_true", help="skip the detectors' crop-framing comparison")
    a = p.parse_args(argv)
    with np.load(SHARED / "fer2013.npz") as d:
        x, y = d["x_test"], d["y_test"]
    if a.limit:
        x, y = x[: a.limit], y[: a.limit]
    runs = {"plain": EmotionDetector(threads=2, face_detector=a.detector),
            "aligned": EmotionDetector(threads=2, face_detector=a.detector, align=True)}
    # the plain run is YuNet's mapped boxes already when the shipped detector is YuNet: not run twice
    mapped = "plain" if runs["plain"].face_detector.name == "yunet" else "yunet_mapped"
    if not a.no_framing:
        runs.update({"blazeface": EmotionDetector(threads=2, face_detector="blazeface"),
                     "yunet_native": EmotionDetector(threads=2, face_detector=YuNetDetector(threads=2, native_boxes=True))})
        if mapped != "plain":
            runs["yunet_mapped"] = EmotionDetector(threads=2, face_detector="yunet")
    res: dict[str, list] = {k: [] for k in runs}
    for img, label in tqdm(zip(x, y), total=len(y), desc="alignment", unit="face", disable=None):
        frame = np.zeros((256, 256), np.uint8)
        frame[64:192, 64:192] = cv2.resize(img, (128, 128), interpolation=cv2.INTER_CUBIC)
        for key, det in runs.items():
            faces = det.detect(frame)
            res[key].append(None if not faces else det.labels.index(faces[0].emotion) == label)
    found, acc = _accuracy(res, ("plain", "aligned"))
    plain = runs["plain"]
    out = {"classifier": measured_file(plain.classifier.path), "face_detector": a.detector,
           "n_images": int(len(y)), "faces_found": found,
           "accuracy_plain": acc["plain"], "accuracy_aligned": acc["aligned"]}
    if not a.no_framing:
        found, acc = _accuracy(res, ("blazeface", mapped, "yunet_native"))
        out["framing"] = {"faces_found_by_both": found, "accuracy_blazeface": acc["blazeface"],
                          "accuracy_yunet_mapped": acc[mapped], "accuracy_yunet_native": acc["yunet_native"]}
    print(json.dumps(out, indent=1))
    if a.json:
        open(a.json, "w").write(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
