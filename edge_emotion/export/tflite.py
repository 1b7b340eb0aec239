"""TFLite export: fp32, fp16 and full-integer int8 (int8 input and output, no float op left)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ..metadata import ModelMetadata, write_tflite_metadata

log = logging.getLogger(__name__)


def _saved_model(model, tmp: Path) -> Path:
    out = tmp / "saved_model"
    model.export(str(out), format="tf_saved_model", verbose=False)
    return out


def export_tflite(model, meta: ModelMetadata, out: Path, precision: str, calib: np.ndarray | None = None, progress=None) -> Path:
    """Write ``out`` from a Keras model; int8 needs ``calib`` (float32 model-input images, NHWC)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model(model, Path(tmp))))
        if precision == "fp16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif precision == "int8":
            if calib is None or len(calib) == 0:
                raise ValueError("int8 export needs calibration images")

            def representative():
                for i in range(len(calib)):
                    if progress:
                        progress(1)
                    yield [calib[i : i + 1].astype(np.float32)]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        elif precision != "fp32":
            raise ValueError(f"TFLite precision must be fp32, fp16 or int8, got {precision!r}")
        data = conv.convert()
    out.write_bytes(data)
    write_tflite_metadata(out, meta)
    return out


def tensor_dtypes(path: Path) -> dict[str, set[str]]:
    """dtypes of a .tflite's tensors: {'activations': {...}, 'io': {...}} (used to prove full-int8)."""
    from ..runtime.backends.litert import _interpreter_class

    Interpreter, _ = _interpreter_class()
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    io_idx = {d["index"] for d in it.get_input_details() + it.get_output_details()}
    acts, io = set(), set()
    for t in it.get_tensor_details():
        name = np.dtype(t["dtype"]).name
        (io if t["index"] in io_idx else acts).add(name)
    return {"activations": acts, "io": io}
