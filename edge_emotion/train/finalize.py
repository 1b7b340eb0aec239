"""Finishing a run: the best checkpoint (or a better average of the last epochs) becomes a float32
``model.keras`` with its metadata sidecar, and the report is written."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import subprocess
from pathlib import Path

from ..preprocessing import Preprocessing
from .config import TrainConfig
from .history import best_so_far, epoch_seconds, epochs_done

log = logging.getLogger(__name__)

__all__ = ["finalize_run"]


def _git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _init_summary(path: str | None) -> dict | None:
    """What a run started from: the file's SHA-256 and, from its metadata, how that model was trained."""
    if not path:
        return None
    from ..errors import ModelError
    from ..metadata import read_metadata, sha256_file

    p = Path(path)
    if not p.is_file():
        return {"file": p.name}
    out: dict = {"file": p.name, "sha256": sha256_file(p)}
    try:
        meta = read_metadata(p)
    except ModelError:  # a .keras without its metadata sidecar: the hash still names it
        return out
    ex = meta.extra
    out.update({k: ex.get(k) for k in ("git_revision", "epochs_run", "train_wall_seconds", "best_val_accuracy")})
    out.update({"model_name": meta.model_name, "label_set": meta.label_set})
    if meta.trained_on_val:  # a refit: its val split was in its training data, so its val figure is not held out
        out["refit"] = True
    else:  # what its final weights (BN refresh, averages) scored on val, in float32: often well above its best epoch
        final = saved_val_accuracy(ex.get("final_weights"))
        if final is not None:
            out["final_val_accuracy"] = final
    if ex.get("init_from"):  # a chain of runs keeps its whole history
        out["init_from"] = ex["init_from"]
    return out


def saved_val_accuracy(final_weights: dict | None) -> float | None:
    """What the weights a run saved scored on val: the chosen candidate's figure, else its best single epoch's (None
    when the record has neither, e.g. a refit, whose weights were set by rule)."""
    fw = final_weights or {}
    chosen = fw.get("chosen")  # a candidate is only chosen when it beats the best epoch (and a continued run's start)
    return chosen["val_accuracy"] if chosen and chosen.get("val_accuracy") is not None else fw.get("best_single_epoch_val_accuracy")


def lost_to_start(final_weights: dict | None) -> tuple[float, float] | None:
    """(val accuracy of what the run saved, of the model it started from) when a continued run (``--init-from``) did
    not beat its start, else None. ``final_weights`` is the record :func:`finalize_run` writes to the metadata; the
    run's model.keras is then its best epoch, and the bundler refuses it."""
    fw = final_weights or {}
    start = fw.get("starting_model_val_accuracy")
    if start is None:
        return None
    saved = saved_val_accuracy(fw) or 0.0
    return (saved, start) if saved <= start else None


def finalize_run(run_dir: str | Path, ds=None, wall: float | None = None, report: bool = True,
                 average_last: int | None = None) -> Path:
    """Best checkpoint -> float32 ``model.keras`` (no optimizer state) + metadata sidecar (+ the report).

    For single-label models the best checkpoint competes on validation with itself after
    BatchNorm re-estimation and, with ``average_last`` (default: the run's ``--average-last``),
    with averages of the last epochs' weights; a continued run's starting model sets the bar
    too (see :mod:`.averaging`). ``wall`` is this call's training time (None: finalisation
    only). Also usable on a run that is still training or was stopped early.
    """
    import keras
    import tensorflow as tf

    from ..metadata import ModelMetadata, sidecar_path
    from ..datasets import load_dataset
    from .models import MODELS, as_float32, float32_copy

    out = Path(run_dir)
    cfg = TrainConfig.load(out)
    if ds is None:
        ds = load_dataset(cfg.data, cfg.label_set, cfg.ferplus_votes, cfg.ferplus_mode, cfg.limit)
        if cfg.refit:
            ds = ds.with_val_in_train()
    ls = ds.label_set
    spec = MODELS[cfg.model]
    monitor = "val_auc" if ls.multi_label else "val_accuracy"
    history_csv = out / "history.csv"
    best_path = out / "best.keras"
    # candidates are scored as they ship: float32 (a bf16 training policy would score them in bfloat16 compute,
    # a few images away from what the exported model and `evaluate` measure on the same split)
    keras.mixed_precision.set_global_policy("float32")
    best_model = float32_copy(keras.saving.load_model(str(best_path), safe_mode=True))
    k = cfg.average_last if average_last is None else average_last
    final_weights = None
    if cfg.refit and not ls.multi_label:  # nothing is chosen on val: the weights are set by rule
        from .averaging import fixed_final_weights

        chosen = fixed_final_weights(best_model, out, ds["train"].x, k, seed=cfg.seed)
        rule = (f"the average of the last {k} epochs, BatchNorm statistics re-estimated where the model has them"
                if k > 1 else "the last epoch")
        final_weights = {"refit": True, "rule": rule, "chosen": chosen.to_dict() if chosen else None, "candidates": [],
                         "scored_in": None}
        log.info("final weights (refit, by rule): %s", chosen.name if chosen else "the last epoch")
    elif not ls.multi_label:  # BatchNorm re-estimation always competes; averages when snapshots were kept
        from .averaging import select_final_weights, val_accuracy

        best_single = val_accuracy(best_model, ds["val"].x, ds["val"].hard_labels)  # float32, as every candidate
        start_val = None
        if cfg.init_from and Path(cfg.init_from).is_file():
            start = as_float32(keras.saving.load_model(cfg.init_from, safe_mode=True))  # scored as the candidates
            if start.output_shape[-1] == ls.num_classes:  # a continued run: the starting point is a candidate too
                start_val = val_accuracy(start, ds["val"].x, ds["val"].hard_labels)
        threshold = max((v for v in (best_single, start_val) if v is not None), default=0.0)
        chosen, cands = select_final_weights(best_model, out, ds["val"].x, ds["val"].hard_labels, ds["train"].x,
                                             threshold, k, seed=cfg.seed)
        final_weights = {"best_single_epoch_val_accuracy": best_single, "chosen": chosen.to_dict() if chosen else None,
                         "candidates": [c.to_dict() for c in cands], "scored_in": "float32",
                         **({"starting_model_val_accuracy": start_val} if start_val is not None else {})}
        log.info("final weights: %s", chosen.name if chosen else "best single epoch (no candidate beat it on val)")
        lost = lost_to_start(final_weights)
        if lost:
            log.warning("the starting model %s scores %.4f on val, more than anything this run produced "
                        "(best epoch %.4f): ship the starting model instead (the bundler refuses this run)", cfg.init_from,
                        lost[1], lost[0])
    final_path = out / "model.keras"
    best_model.save(final_path)
    prev = json.loads((out / "metadata.json").read_text()).get("extra", {}) if (out / "metadata.json").exists() else {}
    wall_total = epoch_seconds(history_csv)  # every epoch of every session, also for a run stopped early
    if wall_total is None:  # runs logged before epoch times were
        wall_total = (prev.get("train_wall_seconds") or 0) + (wall or 0)
    # a finalisation alone (no training in this call) keeps the revision of the code that trained the model
    revisions = ({"git_revision": _git_revision()} if wall is not None or "git_revision" not in prev else
                 {"git_revision": prev["git_revision"], "finalized_at_git_revision": _git_revision()})
    meta = ModelMetadata(labels=list(ls.labels), **Preprocessing.for_input_shape(spec.input_shape).metadata_fields(),
                         multi_label=ls.multi_label, model_name=cfg.model, label_set=ls.name,
                         precision="fp32", format="keras", data_sha256=ds.sha256,
                         extra={**revisions, "epochs_run": epochs_done(history_csv),
                                "epochs_planned": cfg.epochs + (cfg.head_epochs or 0), "train_wall_seconds": round(wall_total, 1),
                                "monitor": monitor, "best_" + monitor: best_so_far(history_csv, monitor),
                                "params": int(best_model.count_params()), "host": platform.node(), "cpu_count": os.cpu_count(),
                                "tensorflow": tf.__version__, "keras": keras.__version__, "config": cfg.__dict__,
                                **({"init_from": _init_summary(cfg.init_from)} if cfg.init_from else {}),
                                **({"final_weights": final_weights} if final_weights else {})})
    sidecar_path(final_path).write_text(meta.to_json())
    (out / "metadata.json").write_text(meta.to_json())
    # the best epoch's checkpoint gets the same labels and preprocessing, so it can be scored on its own
    # (e.g. as the first row of an ingredients table); it is a training checkpoint, not what ships
    best_meta = dataclasses.replace(meta, extra={**meta.extra, "checkpoint": "best single epoch, with optimizer "
                                                 "state; model.keras holds the shipped weights"})
    sidecar_path(best_path).write_text(best_meta.to_json())
    log.info("saved %s (%d params), best %s %s", final_path, best_model.count_params(), monitor, meta.extra["best_" + monitor])
    if report:
        from .report import write_report

        write_report(out, ds)
    return out
