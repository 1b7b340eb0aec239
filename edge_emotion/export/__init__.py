"""Export a trained Keras model to TFLite, ONNX or a TensorRT engine, validated against its source.

The format table (:mod:`edge_emotion.formats`) says which formats and precisions exist;
``EXPORTERS`` maps each format name to the function that writes it. Every artifact
carries its metadata, and is run through the SDK's own runtime on real test images and
compared with the Keras model before it is accepted.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import DEFAULT_DATA
from ..errors import EdgeEmotionError, ModelError
from ..formats import Format, agreement_threshold, artifact_name, format_by_name
from ..metadata import read_metadata, sha256_file
from .calibration import DEFAULT_CALIBRATION_IMAGES, calibration_images
from .validate import ValidationReport, compare

log = logging.getLogger(__name__)

__all__ = ["export_model", "ExportResult", "ExportValidationError", "EXPORTERS"]


class ExportValidationError(EdgeEmotionError):
    """The exported artifact disagrees with its Keras source beyond the threshold."""


@dataclass
class ExportResult:
    path: Path
    format: str
    precision: str
    size_bytes: int
    seconds: float
    validation: ValidationReport | None

    def summary(self) -> str:
        v = self.validation.summary() if self.validation else "not validated"
        return f"{self.path.name}: {self.size_bytes / 1e6:.2f} MB, {self.seconds:.1f} s, {v}"

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "precision": self.precision, "size_bytes": self.size_bytes,
                "seconds": round(self.seconds, 2), "validation": self.validation.to_dict() if self.validation else None}


def _export_tflite(model, meta, out, precision, calib, options, progress):
    from .tflite import export_tflite

    return export_tflite(model, meta, out, precision, calib, progress)


def _export_onnx(model, meta, out, precision, calib, options, progress):
    from .onnx import export_onnx

    return export_onnx(model, meta, out, precision, calib, reduce_range=options.get("reduce_range", True), progress=progress)


def _export_engine(model, meta, out, precision, calib, options, progress):
    from .onnx import export_onnx
    from .tensorrt import _require_trt, build_engine

    _require_trt()  # fail before any work when there is no GPU
    # the ONNX carries the precision: fp16 weights, or QDQ int8 calibrated on real images
    onnx_path = out.with_name(f"{out.stem}.source.onnx")
    export_onnx(model, meta.derive(format="onnx", precision=precision), onnx_path, precision, calib)
    return build_engine(onnx_path, out, meta, precision)


EXPORTERS = {"tflite": _export_tflite, "onnx": _export_onnx, "engine": _export_engine}


def load_keras_with_metadata(path: Path):
    import keras

    from ..train.models import float32_copy

    keras_fmt = format_by_name("keras")
    if path.suffix != keras_fmt.suffix:
        raise ModelError(f"{path}: export starts from a trained {keras_fmt.suffix} model")
    meta = read_metadata(path)
    try:
        model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: Keras cannot load this model: {exc}") from None
    return float32_copy(model), meta


def export_model(model_path: str | Path, format: str = "tflite", precision: str = "int8", out: str | Path | None = None,
                 calib: str | Path | None = None, data: str | Path | None = None, n_calib: int = DEFAULT_CALIBRATION_IMAGES,
                 n_validate: int = 1000, threshold: float | None = None, reduce_range: bool = True,
                 show_progress: bool = True, flip_average: bool = False, calib_seed: int = 0) -> ExportResult:
    """Export ``model_path`` (.keras with its metadata sidecar) and validate the result.

    ``flip_average``: the artifact averages each face with its mirror image inside its graph (one call,
    twice the compute; :func:`edge_emotion.train.models.flip_averaged`), recorded in its metadata as
    ``extra["flip_average"]``; it is validated against the Keras model with the same averaging. ``calib_seed``: which
    draw of ``n_calib`` class-balanced images calibrates an int8 export (``benchmarks.calibration_size`` compares draws).

    Raises :class:`ExportValidationError` (artifact moved to ``<name>.rejected``) when top-1
    agreement with the Keras model on ``n_validate`` real test images is below ``threshold``
    (default: 98 % for int8, 99.9 % for fp16/fp32).
    """
    from tqdm import tqdm

    from ..datasets import load_dataset
    from ..evaluate import predict_file
    from ..predict import keras_predictor, predict_images
    from ..preprocessing import Preprocessing

    model_path = Path(model_path)
    fmt: Format = format_by_name(format)
    if precision not in fmt.precisions:
        raise ValueError(f"{fmt.name} supports precisions {', '.join(fmt.precisions)}; got {precision!r}")
    model, meta = load_keras_with_metadata(model_path)
    if flip_average:
        from ..train.models import flip_averaged

        model = flip_averaged(model)
    prep = Preprocessing.from_metadata(meta)  # the transform the artifact's runtime applies, in TensorFlow
    if tuple(model.input_shape[1:]) != prep.input_shape:
        raise ModelError(f"{model_path}: the model takes inputs of shape {tuple(model.input_shape[1:])} but its metadata "
                         f"says {prep.input_shape}; the sidecar {model_path.name}.json belongs to another model")
    data = Path(data or meta.extra.get("config", {}).get("data") or DEFAULT_DATA)
    out = Path(out) if out else model_path.with_name(artifact_name(model_path.stem, fmt, precision))
    if out.is_dir():
        out = out / artifact_name(model_path.stem, fmt, precision)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    calib_x = None
    calib_info = None
    if precision == "int8":
        raw = calibration_images(calib or data, n_calib, seed=calib_seed, preprocessing=prep)
        calib_x = predict_images(prep.tf_batch, raw)  # model inputs, batch by batch
        calib_info = {"calibration_source": str(calib or data), "calibration_images": int(len(raw))}
    art_meta = meta.derive(format=fmt.name, precision=precision, source_sha256=sha256_file(model_path),
                           extra={k: v for k, v in {**meta.extra, **(calib_info or {}),
                                                    **({"flip_average": True} if flip_average else {}),
                                                    **({"refit": True} if meta.trained_on_val else {})}.items()
                                  if k != "config"})  # the run's config stays with the Keras model; a refit is kept
    bar = tqdm(total=len(calib_x) if calib_x is not None else 0, desc=f"calibrating {out.name}", unit="img",
               disable=not show_progress or calib_x is None, leave=False)
    EXPORTERS[fmt.name](model, art_meta, out, precision, calib_x, {"reduce_range": reduce_range}, bar.update)
    bar.close()

    report = None
    if n_validate:
        ds = load_dataset(data, meta.label_set)
        test = ds["test"]
        idx = np.arange(min(n_validate, len(test)))
        src = predict_images(keras_predictor(model, prep), test.x[idx])
        # the artifact runs through the SDK's own runtime, its own preprocessing included
        art = predict_file(out, test.x[idx])[0]
        thr = agreement_threshold(precision) if threshold is None else threshold
        report = compare(out, src, art, test.hard_labels[idx], thr)
        Path(str(out) + ".validation.json").write_text(json.dumps(report.to_dict(), indent=1))
        if not report.passed:
            rejected = out.with_name(out.name + ".rejected")
            shutil.move(out, rejected)
            raise ExportValidationError(f"{out.name} rejected ({report.summary()}); kept aside as {rejected}")
    res = ExportResult(out, fmt.name, precision, out.stat().st_size, time.time() - t0, report)
    log.info("%s", res.summary())
    return res
