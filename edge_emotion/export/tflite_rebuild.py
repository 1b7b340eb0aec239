"""Rebuild a float TFLite graph as a TensorFlow function, so the TFLite converter can quantise it.

The face detector ships as MediaPipe's float TFLite file (fp16 weights); there is no Keras or
SavedModel source to hand to the converter. This module reads the flatbuffer (op list, options,
constant buffers) and replays it op by op with TensorFlow ops, for the small op set of convolutional
detectors such as BlazeFace. An op it does not know raises :class:`~edge_emotion.errors.ModelError`;
:func:`check_rebuild` compares the rebuilt function with the original interpreter on an input.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from ..errors import ModelError
from ..runtime.backends.litert_resize import _schema

log = logging.getLogger(__name__)

__all__ = ["rebuild", "check_rebuild"]

SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "RELU", "RELU6", "ADD", "PAD", "MAX_POOL_2D", "RESIZE_BILINEAR",
                 "RESHAPE", "CONCATENATION", "DEQUANTIZE")


class _Graph:
    def __init__(self, content: bytes) -> None:
        self.S = S = _schema()
        try:
            self.m = S.Model.GetRootAsModel(bytearray(content), 0)
            self.sg = self.m.Subgraphs(0)
        except Exception as exc:  # noqa: BLE001 - a damaged flatbuffer fails anywhere inside the reader
            raise ModelError(f"not a readable TFLite model ({type(exc).__name__}: {exc})") from None
        if self.m.SubgraphsLength() != 1 or self.sg.InputsLength() != 1:
            raise ModelError("only single-graph, single-input TFLite models can be rebuilt")
        names = {getattr(S.BuiltinOperator, k): k for k in dir(S.BuiltinOperator) if not k.startswith("_")}
        codes = [self.m.OperatorCodes(i) for i in range(self.m.OperatorCodesLength())]
        self.ops = []
        for i in range(self.sg.OperatorsLength()):
            op = self.sg.Operators(i)
            c = codes[op.OpcodeIndex()]
            name = names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "CUSTOM")
            if name not in SUPPORTED_OPS:
                raise ModelError(f"the model uses {name}, which the TFLite rebuild does not support "
                                 f"(supported: {', '.join(SUPPORTED_OPS)})")
            self.ops.append((name, op))
        self._dtypes = {S.TensorType.FLOAT16: np.float16, S.TensorType.FLOAT32: np.float32,
                        S.TensorType.INT32: np.int32, S.TensorType.INT64: np.int64}

    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.sg.Tensors(int(self.sg.Inputs(0))).ShapeAsNumpy())

    def const(self, i: int) -> np.ndarray | None:
        t = self.sg.Tensors(i)
        b = self.m.Buffers(t.Buffer())
        if b is None or b.DataLength() == 0:
            return None
        if t.Type() not in self._dtypes:
            raise ModelError(f"tensor {t.Name().decode()} has a quantised or unusual type ({t.Type()}); "
                             "only float models can be rebuilt")
        shape = t.ShapeAsNumpy()
        return np.frombuffer(b.DataAsNumpy().tobytes(), self._dtypes[t.Type()]).reshape(
            shape if isinstance(shape, np.ndarray) else ())

    def options(self, op, cls):
        o = cls()
        t = op.BuiltinOptions()
        o.Init(t.Bytes, t.Pos)
        return o


def rebuild(content: bytes) -> tuple[Callable, tuple[int, ...]]:
    """``content`` (a float TFLite model) -> (``fn``, input shape): ``fn(x)`` computes the model's outputs,
    in the model's output order, with TensorFlow ops (weights as float32 constants)."""
    import tensorflow as tf

    g = _Graph(content)
    S = g.S
    padding = {S.Padding.SAME: "SAME", S.Padding.VALID: "VALID"}

    def act(x, f: int):
        if f == S.ActivationFunctionType.NONE:
            return x
        if f == S.ActivationFunctionType.RELU:
            return tf.nn.relu(x)
        if f == S.ActivationFunctionType.RELU6:
            return tf.nn.relu6(x)
        raise ModelError(f"fused activation {f} is not supported by the TFLite rebuild")

    consts: dict[int, np.ndarray] = {}

    def const(i: int) -> np.ndarray:
        if i not in consts:
            c = g.const(i)
            if c is None:
                raise ModelError(f"tensor {g.sg.Tensors(i).Name().decode()} is neither computed nor constant")
            consts[i] = c.astype(np.float32) if c.dtype == np.float16 else c
        return consts[i]

    def fn(x):
        env = {int(g.sg.Inputs(0)): x}

        def get(i: int):
            return env[i] if i in env else tf.constant(const(i))

        for name, op in g.ops:
            ins = [int(v) for v in op.InputsAsNumpy()]
            out = int(op.Outputs(0))
            if name == "DEQUANTIZE":  # fp16 weights -> float32 constants
                env[out] = get(ins[0])
            elif name == "CONV_2D":
                o = g.options(op, S.Conv2DOptions)
                w = tf.transpose(get(ins[1]), [1, 2, 3, 0])  # OHWI -> HWIO
                y = tf.nn.conv2d(env[ins[0]], w, [1, o.StrideH(), o.StrideW(), 1], padding[o.Padding()],
                                 dilations=[1, o.DilationHFactor(), o.DilationWFactor(), 1])
                if len(ins) > 2 and ins[2] >= 0:
                    y = y + get(ins[2])
                env[out] = act(y, o.FusedActivationFunction())
            elif name == "DEPTHWISE_CONV_2D":
                o = g.options(op, S.DepthwiseConv2DOptions)
                if o.DepthMultiplier() not in (0, 1):
                    raise ModelError("depthwise convolutions with a depth multiplier are not supported")
                w = tf.transpose(get(ins[1]), [1, 2, 3, 0])  # 1HWC -> HWC1
                y = tf.nn.depthwise_conv2d(env[ins[0]], w, [1, o.StrideH(), o.StrideW(), 1], padding[o.Padding()],
                                           dilations=[o.DilationHFactor(), o.DilationWFactor()])
                if len(ins) > 2 and ins[2] >= 0:
                    y = y + get(ins[2])
                env[out] = act(y, o.FusedActivationFunction())
            elif name == "RELU":
                env[out] = tf.nn.relu(get(ins[0]))
            elif name == "RELU6":
                env[out] = tf.nn.relu6(get(ins[0]))
            elif name == "ADD":
                env[out] = act(get(ins[0]) + get(ins[1]), g.options(op, S.AddOptions).FusedActivationFunction())
            elif name == "PAD":
                env[out] = tf.pad(get(ins[0]), const(ins[1]))
            elif name == "MAX_POOL_2D":
                o = g.options(op, S.Pool2DOptions)
                y = tf.nn.max_pool2d(get(ins[0]), [o.FilterHeight(), o.FilterWidth()], [o.StrideH(), o.StrideW()],
                                     padding[o.Padding()])
                env[out] = act(y, o.FusedActivationFunction())
            elif name == "RESIZE_BILINEAR":
                o = g.options(op, S.ResizeBilinearOptions)
                env[out] = tf.raw_ops.ResizeBilinear(images=get(ins[0]), size=const(ins[1]), align_corners=o.AlignCorners(),
                                                     half_pixel_centers=o.HalfPixelCenters())
            elif name == "RESHAPE":
                shape = const(ins[1]) if len(ins) > 1 and ins[1] >= 0 else g.options(op, S.ReshapeOptions).NewShapeAsNumpy()
                env[out] = tf.reshape(get(ins[0]), shape)
            elif name == "CONCATENATION":
                o = g.options(op, S.ConcatenationOptions)
                env[out] = act(tf.concat([get(i) for i in ins], o.Axis()), o.FusedActivationFunction())
        return [env[int(g.sg.Outputs(k))] for k in range(g.sg.OutputsLength())]

    return fn, g.input_shape()


def check_rebuild(content: bytes, fn: Callable, x: np.ndarray, tolerance: float = 1e-3) -> float:
    """The largest difference, relative to each output's largest value, between ``fn(x)`` and the original
    model run by LiteRT; raises :class:`ModelError` above ``tolerance``."""
    from ..runtime.backends.litert import LiteRTBackend

    ref = LiteRTBackend.from_content(content, "the original model", threads=1).infer(x)
    got = [np.asarray(y) for y in fn(x)]
    worst = 0.0
    for a, b in zip(ref, got):
        if a.shape != b.shape:
            raise ModelError(f"the rebuilt graph gives an output of shape {b.shape}, the original {a.shape}")
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-6)))
    if worst > tolerance:
        raise ModelError(f"the rebuilt graph differs from the original by {worst:.2e} (relative); tolerance {tolerance:g}")
    return worst
