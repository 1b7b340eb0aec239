"""How many calibration images a full-int8 TFLite export needs: the sweep behind the exporter's 2,000.

For every calibration set (a size and a draw of class-balanced Training images) the Keras model is exported to a
full-int8 TFLite in a temporary folder by the exporter itself (``export_model``; its gate is left to this
comparison), and the artifact runs through the runtime on a labelled split: its accuracy, its top-1 agreement with
the same graph in fp32, and its mean absolute probability difference. Several draws at one size show how far the
figure moves with the draw alone; a size is only better than another if it beats that spread. Score on a split the
model did not train on (PublicTest for a model trained on Training alone); PrivateTest is for the final figure, not
for choosing.

    python -m benchmarks.calibration_size MODEL.keras [--sizes 500 1000 2000 4000 8000] [--seeds 0 1 2]
                                          [--flip] [--split val] [--note TEXT] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.conftest import SHARED

log = logging.getLogger("benchmarks.calibration_size")


def sweep(model_path: Path, sizes: list[int], seeds: list[int], data: Path, split: str = "val",
          flip: bool = False, limit: int | None = None, note: str | None = None) -> dict:
    """Export ``model_path`` to int8 once per (size, seed) and score each artifact on ``split`` of ``data``.

    ``note``: what the model is, in words, kept in the result (a model card quotes it beside the file name)."""
    from tqdm import tqdm

    from edge_emotion.datasets import load_dataset
    from edge_emotion.evaluate import predict_file
    from edge_emotion.export import export_model, load_keras_with_metadata
    from edge_emotion.metadata import read_metadata
    from edge_emotion.predict import keras_predictor, predict_images
    from edge_emotion.preprocessing import Preprocessing

    if not sizes or not seeds or min(sizes) < 1:
        raise ValueError(f"need at least one calibration size >= 1 and one seed; got sizes {sizes}, seeds {seeds}")
    model, meta = load_keras_with_metadata(model_path)
    if flip:
        from edge_emotion.train.models import flip_averaged

        model = flip_averaged(model)
    s = load_dataset(data, meta.label_set)[split]
    x, y = (s.x[:limit], s.hard_labels[:limit]) if limit else (s.x, s.hard_labels)
    ref = predict_images(keras_predictor(model, Preprocessing.from_metadata(meta)), x)
    res = {"model": str(model_path), "flip_average": flip, "split": split, "n": int(len(y)), "data": str(data),
           "fp32_accuracy": float((ref.argmax(1) == y).mean()), "rows": [],
           **({"note": note} if note else {})}
    runs = [(n, seed) for n in sizes for seed in seeds]
    for n, seed in tqdm(runs, desc="int8 exports", unit="export", disable=not sys.stderr.isatty()):
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            art = export_model(model_path, "tflite", "int8", out=tmp, data=data, n_calib=n, calib_seed=seed,
                               n_validate=0, show_progress=False, flip_average=flip)
            images = read_metadata(art.path).extra["calibration_images"]  # what the exporter drew, as the artifact records it
            probs = predict_file(art.path, x)[0]
        row = {"images": int(images), "seed": seed, "accuracy": float((probs.argmax(1) == y).mean()),
               "agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
               "mean_prob_diff": float(np.abs(probs - ref).mean()), "seconds": round(time.time() - t0, 1)}
        log.info("%d images, seed %d: accuracy %.2f %%, agreement %.2f %%", row["images"], seed,
                 100 * row["accuracy"], 100 * row["agreement"])
        res["rows"].append(row)
    return res


def markdown(res: dict) -> str:
    """A table of the sweep, one row per export, under the fp32 figure it is compared with."""
    lines = [f"`{res['model']}`{' flip-averaged' if res['flip_average'] else ''}, {res['split']} split "
             f"({res['n']} faces): fp32 {100 * res['fp32_accuracy']:.2f} %", "",
             "| calibration images | draw | int8 accuracy | agreement with fp32 | mean prob. diff |",
             "|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lines.append(f"| {r['images']} | {r['seed']} | {100 * r['accuracy']:.2f} % | {100 * r['agreement']:.2f} % "
                     f"| {r['mean_prob_diff']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.calibration_size", description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="a .keras model with its metadata sidecar")
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000, 8000],
                   help="calibration set sizes (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="draws per size (default: %(default)s)")
    p.add_argument("--flip", action="store_true", help="export the flip-averaged graph, as the bundled default ships")
    p.add_argument("--split", default="val", choices=["train", "val", "test"],
                   help="labelled split to score on (default: %(default)s, FER-2013 PublicTest)")
    p.add_argument("--data", type=Path, default=SHARED / "fer2013.npz", help="dataset (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="score on the first N faces of the split only")
    p.add_argument("--note", default=None, help="what the model is, in words, kept in the JSON (e.g. 'the recipe on Training alone')")
    p.add_argument("--json", type=Path, default=None, help="write the sweep as JSON here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = sweep(a.model, a.sizes, a.seeds, a.data, a.split, a.flip, a.limit, a.note)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
