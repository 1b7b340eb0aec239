"""``edge-emotion train``: the command line of a training run (parsing needs no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import MODEL_NAMES
from .config import OPTIMIZERS, TrainConfig

__all__ = ["build_parser", "config_from_args", "run", "main"]

_DESCRIPTION = """Train a model: one command from a dataset to a run folder with the model, its metadata and a full report.
Re-running the same command resumes from the last finished epoch."""


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="edge-emotion train", description=_DESCRIPTION)
    d = TrainConfig()
    p.add_argument("--model", default=d.model, choices=MODEL_NAMES, help="model to train (default: %(default)s)")
    p.add_argument("--data", default=d.data, help="fer2013.npz, Kaggle fer2013.csv or an image folder (default: %(default)s)")
    p.add_argument("--labels", dest="label_set", default=d.label_set, help="label set: fer7, ferplus8, emotic26 or a JSON file (default: %(default)s)")
    p.add_argument("--out", "-o", default=None, help="run folder (default: runs/<model>); an existing run resumes")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", dest="learning_rate", type=float, default=None, help="peak learning rate (default: the model's)")
    p.add_argument("--lr-schedule", default=d.lr_schedule, choices=["cosine", "constant"],
                   help="warm-up + cosine decay, or a constant rate (a weight-averaging phase; default: %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--random-erasing", type=float, default=d.random_erasing, metavar="P",
                   help="erase a random patch of a training image with probability P (default: off)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, metavar="WD",
                   help="decoupled weight decay on kernels (Adam becomes AdamW; default: %(default)s)")
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS,
                   help="adam, or sgd with Nesterov momentum 0.9 (needs --lr, e.g. 0.01; default: %(default)s)")
    p.add_argument("--average-last", type=int, default=d.average_last, metavar="K",
                   help="keep the last K epochs' weights and ship their average if it beats the best epoch on validation "
                        "(stochastic weight averaging; default: off)")
    p.add_argument("--balance", default=d.balance, choices=["none", "weights", "sqrt", "oversample"], help="class balancing")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    p.add_argument("--mixed-precision", default=d.mixed_precision, choices=["auto", "bf16", "off"])
    p.add_argument("--ferplus-mode", default=d.ferplus_mode, choices=["majority", "soft"])
    p.add_argument("--ferplus-votes", default=None, help="ferplus_labels.npz (default: beside --data)")
    p.add_argument("--init-from", default=None, help=".keras model to start from: transfer to another label set, or continue it (same classes)")
    p.add_argument("--backbone-weights", default=None, help="local weights file for resnet50/densenet121 (no downloads)")
    p.add_argument("--head-epochs", type=int, default=0, help="stage 1 epochs with a frozen body before fine-tuning")
    kd = p.add_argument_group("soft targets", "knowledge distillation and FER+ votes: the training target becomes "
                              "(1 - W) x label + W x soft target (see edge_emotion/train/soft_targets.py)")
    kd.add_argument("--teacher", dest="teachers", action="append", default=None, metavar="MODEL.keras",
                    help="a teacher model with the run's labels (repeat for an ensemble); its flip-averaged predictions on "
                         "the training images are the soft target")
    kd.add_argument("--distill-views", default=d.distill_views, choices=["image", "augmented"],
                    help="image: the teachers predict each un-augmented training image once, flip-averaged; augmented: "
                         "they predict every training batch as the student sees it, after augmentation and mixup "
                         "(one teacher pass a step; default: %(default)s)")
    kd.add_argument("--distill-weight", type=float, default=d.distill_weight, metavar="W",
                    help="share of the target from the soft target (default: %(default)s = off)")
    kd.add_argument("--distill-temperature", type=float, default=d.distill_temperature, metavar="T",
                    help="soften the teachers' probabilities: p^(1/T), renormalised (default: %(default)s)")
    kd.add_argument("--ferplus-soft", type=float, default=d.ferplus_soft, metavar="B",
                    help="mix the images' FER+ vote distributions into the soft target with this share (with no teacher, "
                         "the soft target is the votes); votes from --ferplus-votes (default: %(default)s)")
    p.add_argument("--mixup", type=float, default=d.mixup, metavar="ALPHA",
                   help="mixup within each batch with lambda ~ Beta(ALPHA, ALPHA) (e.g. 0.2; default: off)")
    p.add_argument("--model-arg", dest="model_args", action="append", default=None, metavar="KEY=VALUE",
                   help="keyword argument of the model builder, repeatable; VALUE is JSON (true, 64, \"x\") or a plain "
                        "string (e.g. --model-arg bn_before_relu=true --model-arg relu6=true for alexnet48)")
    p.add_argument("--refit", action="store_true",
                   help="train on train + val with a recipe already chosen on val (more data, nothing left to choose "
                        "with): no best checkpoint and no early stopping; the model is the last epoch, or with "
                        "--average-last K the average of the last K epochs + BatchNorm re-estimation. val figures "
                        "of such a run are on training images")
    p.add_argument("--no-report", dest="report", action="store_false")
    p.add_argument("--finalize", metavar="RUN", default=None,
                   help="write model.keras, metadata and report from RUN's best checkpoint (BatchNorm re-estimation and "
                        "weight averages compete on val), then exit; works on a run that is still training")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None},
                      model_kwargs=parse_model_args(getattr(args, "model_args", None) or []))
    if args.out is None:
        cfg.out = f"runs/{cfg.model}"
    return cfg


def parse_model_args(items: list[str]) -> dict:
    """``["relu6=true", "width=48"]`` -> ``{"relu6": True, "width": 48}``; a value that is not JSON stays a string."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SystemExit(f"--model-arg expects KEY=VALUE with KEY a builder argument name, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    run(args)
    return 0


def run(args: argparse.Namespace) -> Path:
    """Train per the parsed command line, or only finalise an existing run with ``--finalize RUN``."""
    if args.finalize:
        from .finalize import finalize_run

        return finalize_run(args.finalize, report=args.report, average_last=args.average_last or None)
    from .loop import train

    return train(config_from_args(args))


if __name__ == "__main__":
    sys.exit(main())
