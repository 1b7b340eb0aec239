"""Training reports: what a researcher looks at before and after training.

Before: class distribution chart and a per-class sample grid.
After: training curves, confusion matrix, per-class precision/recall/F1, one-vs-rest
ROC-AUC, a grid of correctly and wrongly classified test images; for multi-label sets
also the label co-occurrence matrix and per-class average precision. Everything lands in
the run folder as PNG + ``report.json`` + ``report.md``.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from ..evaluate import add_leakage_free, metrics_from_probs
from ..predict import keras_predictor, predict_images, predict_with_flip
from ..datasets import Dataset

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_data_overview(ds: Dataset, out: Path, per_class: int = 8, seed: int = 0) -> None:
    """class_distribution.png and samples.png."""
    plt = _plt()
    labels = list(ds.label_set.labels)
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.7), 4))
    width = 0.8 / max(1, len(ds.splits))
    for k, name in enumerate(ds.splits):
        counts = ds.class_counts(name)
        ax.bar(np.arange(len(labels)) + k * width, counts, width, label=f"{name} ({len(ds[name])})")
    ax.set_xticks(np.arange(len(labels)) + width * (len(ds.splits) - 1) / 2)
    ax.set_xticklabels(labels, rotation=45 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center")
    ax.set_ylabel("images")
    ax.set_title(f"Class distribution: {Path(ds.source).name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "class_distribution.png", dpi=100)
    plt.close(fig)

    tr = ds["train"]
    rng = np.random.default_rng(seed)
    hard = tr.hard_labels
    fig, axes = plt.subplots(len(labels), per_class, figsize=(per_class * 0.9, len(labels) * 1.0))
    axes = np.atleast_2d(axes)
    for c, lab in enumerate(labels):
        idx = np.flatnonzero(hard == c) if tr.y.ndim == 1 or not ds.label_set.multi_label else np.flatnonzero(tr.y[:, c] > 0.5)
        pick = rng.permutation(idx)[:per_class]
        for j in range(per_class):
            a = axes[c, j]
            a.axis("off")
            if j < len(pick):
                img = tr.x[pick[j]]
                a.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        axes[c, 0].set_title(lab, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=90)
    plt.close(fig)


def plot_curves(history_csv: Path, out: Path) -> None:
    plt = _plt()
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    ep = np.arange(1, len(rows) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("loss", a), ("accuracy", b)):
        for prefix, style in (("", "-"), ("val_", "--")):
            k = prefix + key
            if k in rows[0]:
                ax.plot(ep, [float(r[k]) for r in rows], style, label=k)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    plt = _plt()
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_examples(x: np.ndarray, y: np.ndarray, pred: np.ndarray, labels: list[str], path: Path, n: int = 8, seed: int = 0) -> None:
    """Two rows per block: correctly and wrongly classified test images, with true/predicted labels."""
    plt = _plt()
    rng = np.random.default_rng(seed)
    right = rng.permutation(np.flatnonzero(pred == y))[:n]
    wrong = rng.permutation(np.flatnonzero(pred != y))[:n]
    fig, axes = plt.subplots(2, n, figsize=(n * 1.3, 3.2))
    for row, (idx, tag) in enumerate(((right, "correct"), (wrong, "wrong"))):
        for j in range(n):
            a = axes[row, j]
            a.axis("off")
            if j < len(idx):
                img = x[idx[j]]
                a.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
                a.set_title(f"{labels[y[idx[j]]]}\n→{labels[pred[idx[j]]]}", fontsize=7,
                            color="green" if tag == "correct" else "red")
    fig.suptitle("test images: top row correct, bottom row wrong (true → predicted)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(run_dir: str | Path, ds: Dataset, model_path: str | Path | None = None) -> dict:
    """Evaluate the run's model on val and test and write every figure and table of the report."""
    import keras

    run = Path(run_dir)
    from .models import as_float32

    # float32 compute, as the model ships (a mixed-bfloat16 checkpoint would be scored in bfloat16)
    model = as_float32(keras.saving.load_model(str(model_path or run / "model.keras"), safe_mode=True, compile=False))
    labels = list(ds.label_set.labels)
    predict = keras_predictor(model)
    if (run / "history.csv").exists():
        plot_curves(run / "history.csv", run)
    if not (run / "class_distribution.png").exists():
        write_data_overview(ds, run)
    report: dict = {"labels": labels, "model": str(model_path or run / "model.keras"), "data": ds.source,
                    "data_sha256": ds.sha256, "params": int(model.count_params()),
                    **({"val_in_train": True} if ds.info.get("val_in_train") else {})}
    for split in [s for s in ("val", "test") if s in ds.splits]:
        s = ds[split]
        if ds.label_set.multi_label:
            report[split] = _multilabel_report(predict_images(predict, s.x), s.y, labels, run, split)
            continue
        y = s.hard_labels
        probs, flip = predict_with_flip(predict, s.x, progress=f"report: {split}")
        res = metrics_from_probs(probs, y, labels, report["model"], split, flip)
        if "train" in ds.splits:
            add_leakage_free(res, probs.argmax(1) == y, s.x, ds["train"].x)
        entry = res.to_dict()
        entry["roc_auc"] = _roc_auc(probs, y, labels)
        report[split] = entry
        plot_confusion(np.array(res.confusion), labels, run / f"confusion_{split}.png",
                       f"{split}: accuracy {res.accuracy:.2%}, macro-F1 {res.macro_f1:.3f} (n={res.n})")
        if split == "test":
            plot_examples(s.x, y, probs.argmax(1), labels, run / "examples_test.png")
    (run / "report.json").write_text(json.dumps(report, indent=1))
    (run / "report.md").write_text(report_markdown(report))
    log.info("report written to %s", run)
    return report


def _roc_auc(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    out = {}
    for k, lab in enumerate(labels):
        t = (y == k).astype(int)
        if 0 < t.sum() < len(t):
            out[lab] = float(roc_auc_score(t, probs[:, k]))
    out["macro"] = float(np.mean(list(out.values()))) if out else float("nan")
    return out


def _multilabel_report(probs: np.ndarray, y: np.ndarray, labels: list[str], run: Path, split: str) -> dict:
    from sklearn.metrics import average_precision_score

    plt = _plt()
    yb = (y > 0.5).astype(int)
    ap = {lab: float(average_precision_score(yb[:, k], probs[:, k])) for k, lab in enumerate(labels) if 0 < yb[:, k].sum() < len(yb)}
    co = yb.T @ yb
    fig, ax = plt.subplots(figsize=(10, 9))
    im = ax.imshow(co, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(f"label co-occurrence ({split}, n={len(y)})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(run / f"cooccurrence_{split}.png", dpi=90)
    plt.close(fig)
    pred = (probs > 0.5).astype(int)
    return {"n": int(len(y)), "average_precision": ap, "mAP": float(np.mean(list(ap.values()))) if ap else float("nan"),
            "subset_accuracy": float((pred == yb).all(1).mean()), "cooccurrence": co.tolist()}


def _leakage_note(e: dict) -> str:
    clean = (e.get("extra") or {}).get("without_train_copies")
    if not clean:
        return ""
    return (f" Without the {clean['excluded']} images that have an exact copy in the training split: "
            f"{clean['accuracy']:.2%} (n={clean['n']}).")


def report_markdown(r: dict) -> str:
    lines = [f"# Training report: {Path(r['model']).parent.name}", "", f"Data: `{Path(r['data']).name}` (sha256 {str(r['data_sha256'])[:16]}...), "
             f"{r['params']:,} parameters.", ""]
    for split in ("val", "test"):
        if split not in r:
            continue
        e = r[split]
        if "accuracy" not in e:
            lines += [f"## {split}", "", f"mAP {e['mAP']:.3f}, subset accuracy {e['subset_accuracy']:.3f} (n={e['n']})", ""]
            continue
        in_train = split == "val" and r.get("val_in_train")
        lines += [f"## {split} (n={e['n']})" + (": in the training data (a refit), not held out" if in_train else ""), "",
                  f"Accuracy **{e['accuracy']:.2%}**, macro-F1 {e['macro_f1']:.3f}, "
                  f"with horizontal-flip TTA {e['tta_accuracy']:.2%}, macro ROC-AUC {e['roc_auc']['macro']:.3f}."
                  + _leakage_note(e), "",
                  "| class | precision | recall | F1 | ROC-AUC | n |", "|---|---|---|---|---|---|"]
        for lab, m in e["per_class"].items():
            lines.append(f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {e['roc_auc'].get(lab, float('nan')):.3f} | {m['support']} |")
        lines.append("")
    lines += ["Figures: `curves.png`, `confusion_val.png`, `confusion_test.png`, `examples_test.png`, "
              "`class_distribution.png`, `samples.png`.", ""]
    return "\n".join(lines)
