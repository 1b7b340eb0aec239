"""ONNX export: fp32 (opset 17), fp16, and int8 static QDQ quantisation.

int8 choice: QDQ with per-channel int8 weights and ``reduce_range=True`` (7-bit weights).
On x86 CPUs without VNNI, ONNX Runtime's u8s8 integer kernels can saturate their 16-bit
intermediate sums; the 7-bit range avoids it at a small cost in resolution. Measured on
the shipped model, see its card. On ARM (Raspberry Pi) or VNNI CPUs ``reduce_range=False``
is safe and slightly more accurate: ``--onnx-full-range``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ..metadata import ONNX_METADATA_KEY, ModelMetadata

log = logging.getLogger(__name__)

OPSET = 17


def set_onnx_metadata(model_proto, meta: ModelMetadata) -> None:
    for p in list(model_proto.metadata_props):
        if p.key == ONNX_METADATA_KEY:
            model_proto.metadata_props.remove(p)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta.to_json()


def keras_to_onnx(model, input_name: str = "image"):
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=input_name),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    return proto


def to_fp16(proto):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # keep float32 inputs/outputs: callers feed the same arrays to every precision
    return convert_float_to_float16(proto, keep_io_types=True)


def quantize_int8(proto, calib: np.ndarray, out: Path, reduce_range: bool = True, progress=None) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(range(0, len(calib), 32))

        def get_next(self):
            i = next(self._it, None)
            if i is None:
                return None
            if progress:
                progress(min(32, len(calib) - i))
            return {input_name: calib[i : i + 32].astype(np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        onnx.save(proto, src)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


def export_onnx(model, meta: ModelMetadata, out: Path, precision: str, calib: np.ndarray | None = None,
                reduce_range: bool = True, progress=None) -> Path:
    import onnx

    proto = keras_to_onnx(model)
    if precision == "fp16":
        proto = to_fp16(proto)
    elif precision == "int8":
        if calib is None or len(calib) == 0:
            raise ValueError("int8 export needs calibration images")
        quantize_int8(proto, calib, out, reduce_range, progress)
        proto = onnx.load(str(out))
    elif precision != "fp32":
        raise ValueError(f"ONNX precision must be fp32, fp16 or int8, got {precision!r}")
    set_onnx_metadata(proto, meta)
    onnx.save(proto, str(out))
    return out
