"""Publish a finished training run: device artifacts into the package, the rest into the repository's zoo.

    python -m edge_emotion.export.bundle runs/edge_cnn_fer7 --name edge_cnn_fer7 --default

Replaces everything an earlier bundling of ``<name>`` left (its two folders are rebuilt from the run),
copies the Keras model and its report to ``zoo/<name>/`` (with the starting run's report in
``report/start/`` for a continued run), exports and validates every
artifact listed in ``--artifacts`` on the full test split, moves the ones a device runs (the
format table's ``package_precisions``) into ``edge_emotion/models/<name>/`` (the wheel), and
records each file's SHA-256, test accuracy (its exact floor for the regression gate) and
agreement with the Keras source in ``models/index.json``. Writes the model card beside the
packaged artifacts. ``--reference`` keeps every file of the model in the zoo (a model the
benchmark compares against, not one a device should run). ``--no-keras`` leaves the Keras
model out of the repository (a 14 M-parameter model is 57 MB in fp32): the artifacts are still
exported from it and validated against it, and its SHA-256, size and accuracy are recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from ..errors import EdgeEmotionError
from ..formats import artifact_key, ships_in_package, split_artifact_key
from ..metadata import ModelMetadata, read_metadata, sha256_file
from ..runtime.zoo import MODELS_DIR, ZOO_DIR

log = logging.getLogger(__name__)

REPORT_FILES = ["report.md", "report.json", "curves.png", "confusion_test.png", "confusion_val.png", "examples_test.png",
                "class_distribution.png", "samples.png", "history.csv", "config.json", "metadata.json", "soft_targets.json",
                "ingredients.json", "calibration_size.json"]
START_REPORT_FILES = ["report.md", "report.json", "curves.png", "history.csv", "config.json"]
"""What ``report/start/`` keeps of the run a continued or fine-tuned run started from."""
DEFAULT_ARTIFACTS = ["tflite:int8", "tflite:fp32", "onnx:fp32", "onnx:fp16", "onnx:int8"]
LICENCE = ("Trained on FER-2013 (ICML 2013 challenge data, collected from the web by Pierre-Luc Carrier and Aaron Courville). "
           "FER-2013 is distributed for research only; these weights inherit that restriction: research and evaluation "
           "use only, no commercial use.")


def card_dir(name: str, entry: dict, models_dir: Path = MODELS_DIR, zoo_dir: Path = ZOO_DIR) -> Path:
    """The model card goes where the model's device artifacts are (the package), else into the zoo."""
    return zoo_dir / name if entry.get("reference") else models_dir / name


def bundle(run: Path, name: str, make_default: bool, artifacts: list[str], data: str | None, n_calib: int,
           ship_keras: bool = True, models_dir: Path = MODELS_DIR, zoo_dir: Path = ZOO_DIR,
           reference: bool = False, flip_average: bool = False) -> dict:
    """Export, validate and publish ``run``'s model as bundled model ``name``; returns its index entry.

    Everything is built in staging folders beside ``zoo_dir/name`` and ``models_dir/name`` (the artifacts a
    device runs go to the package's unless ``reference``) and replaces both folders only when every export
    passed its validation gate, so nothing of an earlier bundling stays and a failed one changes nothing.
    With ``ship_keras=False`` the Keras model stays in ``run``: the artifacts are exported from it there, and
    the index records its SHA-256, size and test accuracy but no file. ``flip_average``: every artifact averages each face with its mirror image in
    its graph (:func:`edge_emotion.export.export_model`); the Keras figures are then the same averaging's.
    """
    if not artifacts:
        raise ValueError("nothing to bundle: give at least one FORMAT:PRECISION artifact")
    _refuse_a_regression(run)
    finals = [zoo_dir / name, models_dir / name]
    _check_outside(run, finals)
    # built in staging folders and swapped in only when every artifact passed: a failed export leaves the
    # earlier bundling of this name (which index.json still describes) untouched
    dest, pkg = (d.with_name(f".{d.name}.staging") for d in finals)
    for d in (dest, pkg):
        shutil.rmtree(d, ignore_errors=True)
    try:
        entry = _build(run, dest, pkg, artifacts, data, n_calib, ship_keras, reference, flip_average)
    except BaseException:
        shutil.rmtree(pkg, ignore_errors=True)  # never leave a half-built folder inside the package
        log.error("bundling %s stopped; the earlier bundling of it is untouched; what was built (a rejected export "
                  "and its validation report included) is in %s", name, dest)
        raise
    for staged, final in zip((dest, pkg), finals):  # nothing of the model it replaces stays behind
        if final.is_dir():
            log.info("replacing the earlier bundling in %s", final)
            shutil.rmtree(final)
        if staged.is_dir():
            staged.rename(final)
    index_path = models_dir / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"default": None, "models": {}}
    index["models"][name] = entry
    if make_default or not index.get("default"):
        index["default"] = name
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    _write_card(name, entry, models_dir, zoo_dir)
    return entry


def _check_outside(run: Path, folders: list[Path]) -> None:
    """Bundling replaces ``folders``: the run it reads must not be inside one of them."""
    for d in folders:
        if run.resolve() == d.resolve() or d.resolve() in run.resolve().parents:
            raise ValueError(f"{run} is inside {d}, which bundling replaces: bundle from the training run's folder")


def _build(run: Path, dest: Path, pkg: Path, artifacts: list[str], data: str | None, n_calib: int, ship_keras: bool,
           reference: bool, flip_average: bool) -> dict:
    """Write the zoo's files into ``dest`` and the device artifacts into ``pkg``; returns the index entry."""
    from . import export_model

    dest.mkdir(parents=True)
    if ship_keras:
        for f in ("model.keras", "model.keras.json"):
            shutil.copy2(run / f, dest / f)
    source = dest / "model.keras" if ship_keras else run / "model.keras"
    (dest / "report").mkdir()
    for f in REPORT_FILES:
        if (run / f).exists():
            shutil.copy2(run / f, dest / "report" / f)
    meta = read_metadata(source)
    _copy_start_report(meta.extra.get("config", {}).get("init_from"), dest / "report" / "start")
    keras_entry: dict = {"sha256": sha256_file(source), "size_bytes": source.stat().st_size}
    if ship_keras:
        keras_entry["file"] = "model.keras"
    entry: dict = {"label_set": meta.label_set, "keras": keras_entry, "artifacts": {}, "accuracy_floor": {}}
    if reference:
        entry["reference"] = True
    if flip_average:
        entry["flip_average"] = True
    from ..doctor import int8_class, runtime_versions

    # the floors below are exact on this hardware class with these runtimes (see formats.Precision.floor_tolerance)
    entry["floor_measured_on"] = {"int8_class": int8_class(), "runtimes": runtime_versions()}
    for spec in artifacts:
        fmt, precision = spec.split(":")
        res = export_model(source, fmt, precision, out=dest, data=data, n_calib=n_calib, n_validate=10**6,
                           show_progress=sys.stderr.isatty(), flip_average=flip_average)
        if not reference and ships_in_package(fmt, precision):
            pkg.mkdir(parents=True, exist_ok=True)
            shutil.move(res.path, pkg / res.path.name)
            res.path = pkg / res.path.name
        v = res.validation
        key = artifact_key(fmt, precision)
        entry["artifacts"][key] = {"file": res.path.name, "sha256": sha256_file(res.path), "size_bytes": res.size_bytes,
                                   "test_accuracy": v.accuracy_artifact, "agreement_with_keras": v.agreement,
                                   "max_prob_diff": v.max_prob_diff, "n_test": v.n}
        entry["accuracy_floor"][key] = v.accuracy_artifact
        entry["keras"]["test_accuracy"] = v.accuracy_source
        print(res.summary())
    return entry


def _copy_start_report(init_from: str | None, start: Path) -> None:
    """For a run that continued or fine-tuned another model (its metadata's ``init_from``), keep that run's report
    and curves in ``report/start/`` when its folder is at hand, so the card's history reaches back to the first epoch."""
    if not init_from:
        return
    origin = Path(init_from).parent
    files = [f for f in START_REPORT_FILES if (origin / f).is_file()]
    if not files:
        log.warning("the starting model's run folder %s is not here: its report is not kept in report/start/", origin)
        return
    start.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(origin / f, start / f)


def _write_card(name: str, entry: dict, models_dir: Path, zoo_dir: Path) -> None:
    where = card_dir(name, entry, models_dir, zoo_dir)
    where.mkdir(parents=True, exist_ok=True)
    (where / "MODEL_CARD.md").write_text(model_card(name, zoo_dir / name, entry, where))


def write_cards(models_dir: Path = MODELS_DIR, zoo_dir: Path = ZOO_DIR) -> None:
    """Rewrite every bundled model's card from index.json (no re-export)."""
    index = json.loads((models_dir / "index.json").read_text())
    for name, entry in index["models"].items():
        _write_card(name, entry, models_dir, zoo_dir)


def _training_metadata(dest: Path) -> ModelMetadata:
    """The Keras model's metadata (training configuration and history): its sidecar, or the report's copy
    when the Keras model is not shipped."""
    if (dest / "model.keras").is_file():
        return read_metadata(dest / "model.keras")
    copy = dest / "report" / "metadata.json"
    if not copy.is_file():
        raise FileNotFoundError(f"{dest}: neither model.keras nor report/metadata.json; re-run the bundling")
    return ModelMetadata.from_json(copy.read_text())


def _keras_row(dest: Path, keras: dict, flip_average: bool = False) -> str:
    acc = keras.get("test_accuracy", float("nan"))
    how = "fp32, flip-averaged" if flip_average else "fp32"
    if keras.get("file"):
        return f"| model.keras ({how}) | {(dest / keras['file']).stat().st_size / 1e6:.2f} MB | {acc:.2%} | - | - |"
    return (f"| model.keras ({how}; not shipped, sha256 `{keras['sha256'][:12]}…`) | {keras.get('size_bytes', 0) / 1e6:.2f} MB "
            f"| {acc:.2%} | - | - |")


def model_card(name: str, dest: Path, entry: dict, card_at: Path | None = None) -> str:
    """The card of model ``name`` whose repository files are in ``dest``; links are relative to ``card_at``."""
    meta = _training_metadata(dest)
    rel = Path(os.path.relpath(dest, card_at or dest)).as_posix()
    report = "report/" if rel == "." else f"{rel}/report/"
    rep = json.loads((dest / "report" / "report.json").read_text()) if (dest / "report" / "report.json").exists() else {}
    ex = meta.extra
    cfg = ex.get("config", {})
    test = rep.get("test", {})
    lines = [
        f"# Model card: {name}", "",
        f"**{meta.model_name}** for {len(meta.labels)}-class facial expression recognition "
        f"({', '.join(meta.labels)}), input {meta.input_size[0]}x{meta.input_size[1]} {meta.color}, "
        f"{ex.get('params', 0):,} parameters.", "",
        "## Licence and intended use", "", LICENCE, "",
        "Facial expression is not emotion: the model reports what a face looks like in one image, as labelled by "
        "crowd annotators of web photos. Do not use it to make decisions about people.", "",
        "## Training", "",
        (f"- Data: FER-2013 images (`{Path(str(cfg.get('data', ''))).name}`) with FER+ 10-annotator labels "
         f"(`ferplus_labels.npz`, sha256 `{meta.data_sha256}`), mode `{cfg.get('ferplus_mode')}`: images without a "
         "majority, or whose plurality is 'unknown' / 'not a face', are dropped."
         if meta.label_set == "ferplus8" else
         f"- Data: `{Path(str(cfg.get('data', ''))).name}`, sha256 `{meta.data_sha256}`."),
        ("- Official FER-2013 splits: Training + PublicTest to fit (a refit: the recipe was chosen on PublicTest with "
         "Training alone, see the ingredients below), PrivateTest only for the final figures. Any PublicTest figure of "
         "this model is on images it was trained on." if cfg.get("refit") else
         "- Official FER-2013 splits: Training to fit, PublicTest to select the best epoch, PrivateTest only for the final figures."),
        *_start_lines(cfg, ex),
        *([f"- Built with `{' '.join(f'--model-arg {k}={json.dumps(v)}' for k, v in cfg['model_kwargs'].items())}` "
           f"(options of the `{cfg.get('model')}` builder)."] if cfg.get("model_kwargs") else []),
        f"- {ex.get('epochs_run')} epochs of {ex.get('epochs_planned')} planned, batch {cfg.get('batch_size')}, "
        f"{_optimizer_name(cfg)} "
        + (f"at a constant rate {cfg.get('learning_rate')}" if cfg.get("lr_schedule") == "constant" else
           f"with warm-up + cosine decay (peak {cfg.get('learning_rate') or 'model default'})")
        + f", label smoothing {cfg.get('label_smoothing')}, "
        f"augmentation {'on' if cfg.get('augment') else 'off'} (flip, rotation, zoom, shift, brightness, contrast"
        f"{', random erasing p=%g' % cfg['random_erasing'] if cfg.get('random_erasing') else ''}), "
        f"class balancing: {cfg.get('balance')}, mixed precision {cfg.get('mixed_precision')}, seed {cfg.get('seed')}.",
        f"- Wall time {ex.get('train_wall_seconds', 0) / 60:.0f} min on {ex.get('cpu_count')} CPU cores; TensorFlow {ex.get('tensorflow')}, "
        f"Keras {ex.get('keras')}; git revision `{ex.get('git_revision')}`"
        + (f" (final weights chosen at `{str(ex['finalized_at_git_revision'])[:12]}`)." if ex.get("finalized_at_git_revision") else ".")
        + _wall_in_all(ex),
        f"- Best {ex.get('monitor')}: {ex.get('best_' + str(ex.get('monitor')), 0):.4f}"
        + (" (PublicTest is training data here: not a held-out figure)." if cfg.get("refit") else "."),
        *_soft_target_lines(cfg, dest / "report" / "soft_targets.json"),
        *_final_weights_lines(ex.get("final_weights")),
        *_ingredient_lines(dest / "report" / "ingredients.json"), "",
        f"## Results on the PrivateTest split ({next(iter(entry['artifacts'].values()))['n_test']:,} images, "
        f"{'FER+ majority labels' if meta.label_set == 'ferplus8' else 'FER-2013 labels'})", "",
        "| artifact | size | accuracy | agreement with Keras | max prob. diff |", "|---|---|---|---|---|",
        _keras_row(dest, entry["keras"], entry.get("flip_average", False)),
    ]
    for key, a in sorted(entry["artifacts"].items()):  # index.json's order, so bundling and --cards-only write the same card
        lines.append(f"| {a['file']} | {a['size_bytes'] / 1e6:.2f} MB | {a['test_accuracy']:.2%} | {a['agreement_with_keras']:.2%} | {a['max_prob_diff']:.3f} |")
    if entry.get("flip_average"):
        lines += ["", "Every artifact averages each face with its mirror image inside its graph: one call, one file, twice "
                  "the classifier's compute per face (the weights are stored once). Its agreement is measured against the "
                  f"Keras model with the same averaging; the Keras model alone (one pass) scores {test.get('accuracy', 0):.2%}."]
        val = rep.get("val", {})
        if val.get("tta_accuracy") is not None and not cfg.get("refit"):
            lines[-1] += (f" Chosen on PublicTest ({val.get('n', 0):,} images): {val['tta_accuracy']:.2%} with the averaging "
                          f"against {val['accuracy']:.2%} for one pass ({100 * (val['tta_accuracy'] - val['accuracy']):+.2f} points).")
    if test:
        lines += ["", (f"Keras fp32 with horizontal-flip test-time augmentation (optional, 2x compute): {test.get('tta_accuracy', 0):.2%}. "
                       if not entry.get("flip_average") else "Keras fp32, one pass: ") +
                  f"Macro-F1 {test.get('macro_f1', 0):.3f}, macro ROC-AUC {test.get('roc_auc', {}).get('macro', 0):.3f}.", "",
                  *_leakage_lines(test),
                  "| class | precision | recall | F1 | n |", "|---|---|---|---|---|"]
        for lab, m in test.get("per_class", {}).items():
            lines.append(f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += _calibration_lines(dest, report)
    lines += _rejected_lines(dest, report)
    if entry.get("reference"):
        lines += ["", "A reference model: every file of it stays in the repository (`zoo/" + name + "/`), none ships in "
                  "the wheel; the benchmark compares it with the device models."]
    else:
        shipped = [a["file"] for key, a in sorted(entry["artifacts"].items()) if ships_in_package(*split_artifact_key(key))]
        lines += ["", f"In the wheel: {', '.join(f'`{f}`' for f in shipped)} (what a device runs). The Keras source, the other "
                  f"exports and the reports stay in the repository under `zoo/{name}/`."]
    if not entry["keras"].get("file"):
        lines += ["", "The fp32 Keras model is not in the repository (too large to keep); every artifact above was exported "
                  "from it and validated against it on the full split. The training metadata is in "
                  f"[`report/metadata.json`]({report}metadata.json); the README's Reproduce section rebuilds the model."]
    lines += ["", f"Report and figures (repository only; the example grids show FER-2013 faces): [`report/`]({report}) "
              "(curves, confusion matrices, examples, class distribution)."
              + (f" The starting model's training log and curves: [`report/start/`]({report}start/)."
                 if (dest / "report" / "start").is_dir() else ""), "",
              "Known limits: FER-2013 labels agree with the 10-annotator FER+ votes on only ~64 % of images (fear 15 %, disgust 35 %), "
              "so ~70-75 % is about the ceiling on these labels; disgust has 436 training images and is rarely predicted.", ""]
    return "\n".join(lines)


def _optimizer_name(cfg: dict) -> str:
    """How the card names a run's optimizer (runs from before ``optimizer`` was recorded used Adam)."""
    decay = f" (weight decay {cfg['weight_decay']:g} on kernels)" if cfg.get("weight_decay") else ""
    if cfg.get("optimizer") == "sgd":
        return "SGD with Nesterov momentum 0.9" + decay
    return ("AdamW" if decay else "Adam") + decay


def _wall_in_all(ex: dict) -> str:
    """The card's total wall time over every recorded start (`` With the starting model's N min: M min in all.``), or
    nothing when the nearest start has no wall time recorded (a run from scratch, or an old record)."""
    starts = [i.get("train_wall_seconds") for i in _start_chain(ex)]
    if not starts or not starts[0]:
        return ""
    before = sum(w for w in starts if w)
    whose = "the starting model's" if len(starts) == 1 else f"the {len(starts)} models it descends from"
    return f" With {whose} {before / 60:.0f} min: {(ex.get('train_wall_seconds', 0) + before) / 60:.0f} min in all."


def _start_chain(ex: dict) -> list[dict]:
    """The models a run descends from, nearest first (each recorded start's summary holds its own start's)."""
    chain, init = [], ex.get("init_from")
    while isinstance(init, dict) and init:
        chain.append(init)
        init = init.get("init_from")
    return chain


def _start_summary(init: dict) -> str:
    """One recorded start: its hash, model, label set, training length and its held-out figure (none for a refit)."""
    return (f"sha256 `{init['sha256'][:16]}…`, {init.get('model_name')} on {init.get('label_set')}, "
            f"{init.get('epochs_run')} epochs in {(init.get('train_wall_seconds') or 0) / 60:.0f} min at git revision "
            f"`{str(init.get('git_revision'))[:12]}`, " +
            ("a refit: PublicTest was in its training data, so it has no held-out figure" if init.get("refit") else
             f"best val accuracy {init.get('best_val_accuracy') or 0:.2%}"
             + (f", its final weights {init['final_val_accuracy']:.2%}" if init.get("final_val_accuracy") is not None else "")))


def _start_lines(cfg: dict, ex: dict) -> list[str]:
    """Where a fine-tuned or continued run started: the file, its SHA-256 and how that model was trained, then the
    models that one descends from (e.g. a FER+ model's FER-2013 start), each by its hash."""
    if not cfg.get("init_from"):
        return []
    chain = _start_chain(ex)
    how = ("new head on a frozen body, then all layers fine-tuned" if cfg.get("head_epochs") else
           "same classes: a weight-averaging phase at a constant learning rate" if cfg.get("lr_schedule") == "constant" else
           "same classes: a second, low-rate cosine cycle")
    if not chain or not chain[0].get("sha256"):  # runs finalised before the starting model was recorded
        return [f"- Started from `{cfg['init_from']}` ({how}), as of git revision `{str(ex.get('git_revision'))[:12]}`."]
    # the file is named by its hash; the path was the trainer's machine's
    return [f"- Started from `{Path(cfg['init_from']).name}` ({how}): {_start_summary(chain[0])}.",
            *(f"  - that one started from {_start_summary(up)}." for up in chain[1:] if up.get("sha256"))]


def _short(path: str) -> str:
    """``folder/file`` of a path: enough to tell runs apart without the machine's directories."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _soft_target_lines(cfg: dict, soft_json: Path) -> list[str]:
    """How the training targets were made: distillation from teachers, FER+ votes, mixup."""
    out = []
    if cfg.get("distill_weight"):
        s = json.loads(soft_json.read_text()) if soft_json.is_file() else {}
        # a teacher is named by its run folder too: several runs' teachers are all called model.keras
        teachers = ", ".join(f"`{_short(t['path'])}` (sha256 `{t['sha256'][:12]}…`)" for t in s.get("teachers", [])) or \
            ", ".join(f"`{_short(t)}`" for t in cfg.get("teachers", []))
        views = ("predictions on every augmented training batch as the student saw it" if cfg.get("distill_views") == "augmented"
                 else "flip-averaged predictions")
        src = (f"the {views} of {teachers} at temperature {cfg.get('distill_temperature')}"
               + (f", mixed with the FER+ vote distributions (share {cfg.get('ferplus_soft')}) on the "
                  f"{s['votes']['images_with_votes']:,} training images that have them" if s.get("votes") and cfg.get("teachers") else "")
               if cfg.get("teachers") else "the FER+ vote distributions")
        line = (f"- Targets: {1 - cfg['distill_weight']:g} x the FER-2013 label + {cfg['distill_weight']:g} x a soft target, "
                f"{src}.")
        if s.get("val_accuracy") is not None:
            line += (f" The soft targets' top class matches the PublicTest label on {s['val_accuracy']:.2%} of "
                     f"{s.get('val_images', 0):,} images" + (f", and the training label on {s['train_label_agreement']:.2%}."
                                                             if "train_label_agreement" in s else " (flip-averaged)."))
        out.append(line)
    if cfg.get("mixup"):
        out.append(f"- Mixup within each batch, lambda ~ Beta({cfg['mixup']:g}, {cfg['mixup']:g}).")
    return out


def _ingredient_lines(path: Path) -> list[str]:
    """What each ingredient of the recipe gained on PublicTest (``ingredients.json``: measured rows, in order).

    Every gain reads against the recipe as it stood when that step was measured: the last kept, held-out row before
    it in the file with the same form (one pass against one pass, flip-averaged against flip-averaged), or the last
    kept held-out row before it when none has that form (the step that adds the flip). An ingredient tried on an
    earlier recipe is therefore listed in the file before the step that changed the recipe after it.
    """
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    n = {r.get("n") for r in rows}
    size = f"{n.pop():,} images; " if len(n) == 1 and None not in n else ""
    base: list[float | None] = []  # each row's reference figure, from the kept held-out rows before it
    last: dict[bool, float] = {}
    latest = None
    for r in rows:
        flip = bool(r.get("flip_average", False))
        base.append(last.get(flip, latest))
        if r.get("kept", True) and r.get("val_accuracy") is not None:
            last[flip] = latest = r["val_accuracy"]
    out = ["", f"What each ingredient gained, on PublicTest ({size}the selection split):", "",
           "| step | PublicTest accuracy | gain |", "|---|---:|---:|"]
    kept = [(r, b) for r, b in zip(rows, base) if r.get("kept", True)]
    for r, b in kept:
        if r.get("val_accuracy") is None:  # a refit: PublicTest is in its training data, so it has no figure there
            out.append(f"| {r['step']} | not held out | |")
            continue
        gain = "" if b is None else f"{r['val_accuracy'] - b:+.2%}"
        out.append(f"| {r['step']} | {r['val_accuracy']:.2%} | {gain} |")
    tried = [(r, b) for r, b in zip(rows, base)
             if not r.get("kept", True) and r.get("val_accuracy") is not None and b is not None]
    if tried:
        refit = any(r.get("val_accuracy") is None for r, _ in kept)
        out += ["", "Tried and not kept (gain against the recipe as it stood when each was tried, in the same form: one "
                "pass against one pass, flip-averaged against flip-averaged" + ("; on Training alone" if refit else "")
                + "):", "", "| step | PublicTest accuracy | gain |", "|---|---:|---:|"]
        out += [f"| {r['step']} | {r['val_accuracy']:.2%} | {r['val_accuracy'] - b:+.2%} |" for r, b in tried]
    return out


def _refuse_a_regression(run: Path) -> None:
    """A continued run that did not beat the model it started from on val is not bundled
    (:func:`edge_emotion.train.finalize.lost_to_start`)."""
    from ..train.finalize import lost_to_start

    side = run / "model.keras.json"
    if not side.exists():
        return
    extra = json.loads(side.read_text()).get("extra", {})
    lost = lost_to_start(extra.get("final_weights"))
    if lost:
        raise ValueError(f"{run}: its final weights score {lost[0]:.2%} on val, below the {lost[1]:.2%} of the model "
                         f"it started from ({extra.get('config', {}).get('init_from')}); bundle that model's run "
                         "instead, or train on until this one beats it")


def _final_weights_lines(avg: dict | None) -> list[str]:
    if not avg:
        return []
    if avg.get("refit"):
        chosen = avg.get("chosen")
        what = (f"{chosen['name']} (stochastic weight averaging"
                + (", then BatchNorm statistics re-estimated on un-augmented training images)" if chosen["refresh_bn"] else ")")
                if chosen else "the last epoch")
        return [f"- Shipped weights: {what}, set by rule ({avg.get('rule')}), the form the recipe chose on PublicTest "
                "before the refit: nothing was chosen on PublicTest, which is training data here."]
    tried = "; ".join(f"{c['name']}: {c['val_accuracy']:.2%}" for c in avg["candidates"])
    chosen = avg.get("chosen")
    start = avg.get("starting_model_val_accuracy")
    vs_start = f" and {start:.2%} for the model it started from" if start is not None else ""
    how = ("stochastic weight averaging" + (", then BatchNorm statistics re-estimated on un-augmented training images"
                                           if chosen["refresh_bn"] else "")
           if chosen and chosen["epochs"] else "BatchNorm statistics re-estimated on un-augmented training images")
    head = (f"- Shipped weights: {chosen['name']} ({how}), val accuracy {chosen['val_accuracy']:.2%} "
            f"against {avg['best_single_epoch_val_accuracy']:.2%} for the best single epoch{vs_start}."
            if chosen else
            f"- Shipped weights: the best single epoch ({avg['best_single_epoch_val_accuracy']:.2%} on val); no weight average "
            f"beat it" + (f" (the model it started from: {start:.2%})" if start is not None else "") + ".")
    # finalisations record the precision since scoring moved to float32; an earlier one that scored in the run's mixed
    # precision gets a word, since the float32 figures of the same model (ingredients, results) differ by a few tenths
    scored = avg.get("scored_in")
    how = (f" in {scored} compute, as this run's finalisation did before scoring moved to float32 (the ingredients "
           f"table and the results below are float32)" if scored and scored != "float32" else "")
    return [head, f"  Candidates scored on val (PublicTest){how}: {tried}."]


def _rejected_lines(dest: Path, report: str = "report/") -> list[str]:
    """Exports that failed the validation gate and were left out; their reports are kept as
    ``report/rejected_<file>.validation.json``."""
    out = []
    for f in sorted((dest / "report").glob("rejected_*.validation.json")):
        v = json.loads(f.read_text())
        drop = v["accuracy_source"] - v["accuracy_artifact"]
        why = ("accuracy barely moves while agreement falls: most likely low-margin predictions whose top class flips "
               "under quantisation noise" if drop < 0.015 else
               f"accuracy falls {100 * drop:.1f} points: the quantised model has lost information, not just flipped ties")
        out.append(f"- `{v['artifact']}`: agreement with Keras {v['agreement']:.2%} (gate {v['threshold']:.0%}), "
                   f"accuracy {v['accuracy_artifact']:.2%} against {v['accuracy_source']:.2%} ({why}), max prob. diff "
                   f"{v['max_prob_diff']:.3f} on {v['n']:,} images ([report]({report}{f.name})).")
    if not out:
        return []
    return ["", "Rejected by the export gate and not shipped:", "", *out]


SPLIT_NAMES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
"""The official FER-2013 names of the splits, as the cards print them."""


def calibration_summary(sweep: dict) -> tuple[dict[int, float], list[int], float]:
    """A calibration sweep (``benchmarks.calibration_size`` JSON) in three figures: the mean int8 accuracy per
    calibration set size (sizes ascending), the numbers of draws per size, and the largest spread (max - min) between
    the draws of one size. The card and the README's check both read it so."""
    by_size: dict[int, list[float]] = {}
    for r in sweep["rows"]:
        by_size.setdefault(r["images"], []).append(r["accuracy"])
    means = {n: sum(a) / len(a) for n, a in sorted(by_size.items())}
    return means, sorted({len(a) for a in by_size.values()}), max(max(a) - min(a) for a in by_size.values())


def _calibration_lines(dest: Path, report: str = "report/") -> list[str]:
    """How the int8 figure moves with the calibration set: ``report/calibration_size.json``, a sweep written by
    ``python -m benchmarks.calibration_size`` (several sizes, several draws of each), when the run has one."""
    f = dest / "report" / "calibration_size.json"
    if not f.is_file():
        return []
    s = json.loads(f.read_text())
    by_size, draws, spread = calibration_summary(s)
    means = ", ".join(f"{n:,}: {100 * m:.2f} %" for n, m in by_size.items())
    split = SPLIT_NAMES.get(s["split"], s["split"])
    return ["", f"How the int8 figure moves with its calibration set (class-balanced Training images): a sweep on "
            f"`{_short(s['model'])}`{' (flip-averaged)' if s.get('flip_average') else ''}"
            f"{', ' + s['note'] if s.get('note') else ''}, scored on {split} "
            f"({s['n']:,} faces; its fp32 graph {s['fp32_accuracy']:.2%}), mean int8 accuracy by calibration set size "
            f"({'/'.join(map(str, draws))} draws each): {means}; draws of one size differ by up to "
            f"{100 * spread:.2f} point ([`report/calibration_size.json`]({report}calibration_size.json))."]


def _leakage_lines(test: dict) -> list[str]:
    clean = (test.get("extra") or {}).get("without_train_copies")
    if not clean:
        return []
    return [f"Leakage-free figure: {clean['excluded']} test images have a pixel-identical copy in the training split; "
            f"without them the Keras model scores {clean['accuracy']:.2%} (n={clean['n']:,}).", ""]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m edge_emotion.export.bundle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, nargs="?", help="finished run folder (model.keras + model.keras.json + report)")
    p.add_argument("--name", help="bundled model name (required unless --cards-only)")
    p.add_argument("--default", action="store_true", help="make it the package's default model")
    p.add_argument("--artifacts", nargs="*", default=DEFAULT_ARTIFACTS, help="FORMAT:PRECISION list (default: %(default)s)")
    p.add_argument("--data", default=None, help="dataset for calibration and validation (default: the training data)")
    p.add_argument("--n-calib", type=int, default=2000)
    p.add_argument("--no-keras", dest="ship_keras", action="store_false",
                   help="leave model.keras out of the repository (record its SHA-256, size and accuracy only)")
    p.add_argument("--reference", action="store_true",
                   help="a reference model: keep every file in the repository's zoo/, ship nothing in the wheel")
    p.add_argument("--flip-average", action="store_true",
                   help="every artifact averages each face with its mirror image in its graph (one call, 2x compute)")
    p.add_argument("--cards-only", action="store_true", help="only rewrite the model cards of every bundled model")
    a = p.parse_args(argv)
    if a.cards_only:
        write_cards()
        return 0
    if a.run is None or a.name is None:
        p.error("RUN and --name are required")
    try:
        bundle(a.run, a.name, a.default, a.artifacts, a.data, a.n_calib, ship_keras=a.ship_keras, reference=a.reference,
               flip_average=a.flip_average)
    except (ValueError, EdgeEmotionError) as e:  # what the user can act on, without a traceback
        p.exit(1, f"{p.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
