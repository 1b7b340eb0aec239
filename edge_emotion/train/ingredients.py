"""What each ingredient of a training recipe gained, measured on the selection split (PublicTest).

    python -m edge_emotion.train.ingredients -o runs/kd/ingredients.json \\
        "starting model=zoo/edge_cnn_fer7/model.keras" \\
        "+ flip average in the graph=zoo/edge_cnn_fer7/model.keras:flip" \\
        "+ distillation=runs/kd/model.keras:flip"

Each STEP is ``NAME=MODEL`` (one pass) or ``NAME=MODEL:flip`` (the model averaged with its mirror image,
what ``export --flip-average`` puts in the graph). Every model is scored on the same split; the rows, in
order, go to ``ingredients.json``, which the bundler copies into the report and the model card shows
as a table with each step's gain over the recipe's step before it of the same form (one pass or
flip-averaged). ``--tried STEP`` adds an ingredient that was measured and not kept (``"kept": false``):
the card lists it after the recipe, with its gain against the recipe's last step of its form.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..datasets import DEFAULT_DATA

log = logging.getLogger(__name__)

__all__ = ["parse_step", "measure_steps", "main"]


def parse_step(text: str) -> tuple[str, Path, bool]:
    """``NAME=MODEL[:flip]`` -> (name, model path, flip)."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec:
        raise ValueError(f"a step is NAME=MODEL or NAME=MODEL:flip, got {text!r}")
    flip = spec.endswith(":flip")
    return name.strip(), Path(spec[: -len(":flip")] if flip else spec), flip


def measure_steps(steps: list[tuple[str, Path, bool]], data: str | Path = DEFAULT_DATA, split: str = "val",
                  limit: int | None = None, tried: list[tuple[str, Path, bool]] = ()) -> list[dict]:
    """Accuracy of each step's model on ``split`` (one pass, or flip-averaged), each model evaluated once
    (``limit``: only the split's first images, for a quick look; the card's table uses the whole split).
    ``tried``: ingredients measured and not kept, rows with ``"kept": false`` after the recipe's."""
    from ..evaluate import evaluate_file
    from ..runtime.zoo import published_with_flip_average

    scored: dict[Path, tuple[float, float, int]] = {}
    rows = []
    for (name, path, flip), kept in [(st, True) for st in steps] + [(st, False) for st in tried]:
        if not flip and published_with_flip_average(path):
            # the Keras backend runs a flip-published model's Keras source flip-averaged, as its artifacts do: its
            # "one pass" would silently be the flip-averaged figure
            raise ValueError(f"step {name!r}: {path} is the Keras source of a model published flip-averaged, which "
                             "runs averaged with its mirror image; for its one-pass figure give the run's model.keras "
                             "(or any copy of the file outside the model zoo)")
        if path not in scored:
            r = evaluate_file(path, data, split, tta=True, limit=limit)
            scored[path] = (r.accuracy, float(r.tta_accuracy), r.n)
        acc, n = scored[path][1 if flip else 0], scored[path][2]
        rows.append({"step": name, "model": str(path), "flip_average": flip, "split": split, "n": n,
                     "val_accuracy": round(acc, 6), "kept": kept})
        log.info("%s%s: %.2f%% on %s", name, "" if kept else " (tried, not kept)", 100 * acc, split)
    return rows


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m edge_emotion.train.ingredients", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", nargs="+", metavar="STEP", help="NAME=MODEL or NAME=MODEL:flip, in recipe order")
    p.add_argument("--tried", action="append", default=[], metavar="STEP",
                   help="an ingredient measured and not kept, NAME=MODEL[:flip] (repeatable): listed after the recipe "
                        "with its gain against the recipe's last step of the same form (one pass or flip)")
    p.add_argument("--data", default=DEFAULT_DATA, help="dataset (default: %(default)s)")
    p.add_argument("--split", default="val", help="split to score on (default: %(default)s = PublicTest, the selection split)")
    p.add_argument("--out", "-o", type=Path, required=True, help="ingredients.json to write (in the run folder)")
    p.add_argument("--limit", type=int, default=None, help="score only the split's first N images (a quick look)")
    a = p.parse_args(argv)
    try:
        steps = [parse_step(s) for s in a.steps]
        tried = [parse_step(s) for s in a.tried]
    except ValueError as e:
        p.error(str(e))
    rows = measure_steps(steps, a.data, a.split, a.limit, tried)
    a.out.write_text(json.dumps(rows, indent=1) + "\n")
    for r in rows:
        print(f"{r['val_accuracy']:.2%}  {r['step']}{'' if r['kept'] else '  (tried, not kept)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
