"""Rewrite a fully convolutional TFLite model for another fixed input size (height x width).

LiteRT's ``resize_tensor_input`` only works for models whose ops take no size constants. BlazeFace
full-range does: its three upsampling ops carry their target sizes (12, 24, 48) as constant tensors
and its output reshapes carry ``[1, 2304, k]``, so XNNPACK fails to prepare it at any other size. This
module rewrites those numbers, and the stored shapes of every tensor computed from the input, in a
copy of the flatbuffer. Every number it touches is rewritten in place (same byte length), so the
model's layout, weights and all other fields are untouched. A 16:9 frame then runs through a
128 x 192 input instead of letterboxing into 192 x 192: a third fewer pixels at the same scale.

Only models made of ops whose behaviour does not depend on the input size, apart from the numbers
rewritten here, are accepted; anything else raises :class:`~edge_emotion.errors.ModelError` rather
than risk a silently wrong result. The caller still validates the rewritten model on real images.
"""

from __future__ import annotations

import numpy as np

from ...errors import BackendUnavailableError, ModelError

# ops that work on any spatial size once their size constants and stored shapes are rewritten
_SIZE_FREE = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "SUB", "RELU", "RELU6", "LOGISTIC", "MAX_POOL_2D",
              "AVERAGE_POOL_2D", "PAD", "DEQUANTIZE", "QUANTIZE", "DENSIFY", "DEPTH_TO_SPACE", "CONCATENATION",
              "PRELU", "HARD_SWISH", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE"}
_RESIZE_OPS = {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema  # type: ignore[no-redef]
        except ImportError:
            raise BackendUnavailableError("rewriting a TFLite model's input size needs ai-edge-litert "
                                          "(pip install ai-edge-litert)") from None
    return schema


def can_resize() -> bool:
    """Whether the TFLite schema reader this module needs is installed."""
    try:
        _schema()
    except BackendUnavailableError:
        return False
    return True


def input_hw(content: bytes) -> tuple[int, int]:
    """The (height, width) of a TFLite model's first input."""
    return _input_hw(_schema().Model.GetRootAsModel(bytearray(content), 0).Subgraphs(0))


def _input_hw(sg) -> tuple[int, int]:
    shape = sg.Tensors(int(sg.Inputs(0))).ShapeAsNumpy()
    if not isinstance(shape, np.ndarray) or len(shape) != 4:
        raise ModelError(f"the model's input has shape {shape}; an NHWC image input (4 dimensions) is needed")
    return int(shape[1]), int(shape[2])


def resize_input(content: bytes, height: int, width: int) -> bytes:
    """A copy of the TFLite model ``content`` whose input is ``height`` x ``width``.

    Every feature map scales by the same factors, so each must stay a whole number of cells: for
    BlazeFace full-range (five stride-2 stages) both sides must be multiples of 32.
    """
    schema = _schema()
    buf = bytearray(content)
    try:
        m = schema.Model.GetRootAsModel(buf, 0)
        sg = m.Subgraphs(0)
    except Exception as exc:  # noqa: BLE001 - a damaged flatbuffer fails anywhere inside the reader
        raise ModelError(f"not a readable TFLite model ({type(exc).__name__}: {exc})") from None
    if m.SubgraphsLength() != 1 or sg.InputsLength() != 1:
        raise ModelError("only single-graph, single-input TFLite models can be resized")
    names = {getattr(schema.BuiltinOperator, k): k for k in dir(schema.BuiltinOperator) if not k.startswith("_")}
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]

    def opname(op) -> str:
        c = codes[op.OpcodeIndex()]
        return names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "CUSTOM")

    h0, w0 = _input_hw(sg)  # the graph already parsed above
    fy, fx = height / h0, width / w0

    def scaled(v: int, f: float, what: str) -> int:
        n = v * f
        if abs(n - round(n)) > 1e-6 or round(n) < 1:
            raise ModelError(f"cannot run this model at {height}x{width}: {what} of {v} would become {n:g} "
                             f"(sides must keep every feature map whole; the model was built for {h0}x{w0})")
        return round(n)

    def hw(t: int) -> tuple[int, int] | None:
        shape = sg.Tensors(t).ShapeAsNumpy()
        return (int(shape[1]), int(shape[2])) if isinstance(shape, np.ndarray) and len(shape) == 4 else None

    # the tensors computed from the input, in graph order. An explicit PAD adds a fixed border (the sparse
    # full-range model pads 192 -> 194 before its VALID convolutions): such a tensor's size is a scaled
    # feature map plus that border, which tensors of the same shape computed from it inherit.
    ops = [sg.Operators(i) for i in range(sg.OperatorsLength())]
    live = {int(sg.Inputs(0))}
    border: dict[int, tuple[int, int]] = {}
    for op in ops:
        ins = [int(t) for t in op.InputsAsNumpy() if t >= 0]
        if any(t in live for t in ins):
            outs = [int(t) for t in op.OutputsAsNumpy()]
            live.update(outs)
            if opname(op) not in _SIZE_FREE:
                raise ModelError(f"the model uses {opname(op)}, whose result may depend on the input size; "
                                 "it cannot be resized safely")
            src, dst = hw(ins[0]), hw(outs[0])
            if src is None or dst is None:
                continue
            if opname(op) == "PAD":
                have = border.get(ins[0], (0, 0))
                border[outs[0]] = (dst[0] - src[0] + have[0], dst[1] - src[1] + have[1])
            elif dst == src and ins[0] in border:
                border[outs[0]] = border[ins[0]]

    for t in sorted(live):
        tensor = sg.Tensors(t)
        bh, bw = border.get(t, (0, 0))
        for vec in (tensor.ShapeAsNumpy(), tensor.ShapeSignatureAsNumpy()):
            if not isinstance(vec, np.ndarray) or len(vec) == 0:
                continue
            if len(vec) == 4:
                if vec[1] > 0:
                    vec[1] = scaled(int(vec[1]) - bh, fy, "a feature map's height") + bh
                if vec[2] > 0:
                    vec[2] = scaled(int(vec[2]) - bw, fx, "a feature map's width") + bw
            elif len(vec) == 3 and vec[1] > 0:  # [1, cells, k]: a flattened feature map
                vec[1] = scaled(int(vec[1]), fy * fx, "a flattened feature map")

    done: set[int] = set()
    for op in ops:
        name = opname(op)
        if name in _RESIZE_OPS:
            size_tensor = sg.Tensors(int(op.Inputs(1)))
            b = size_tensor.Buffer()
            if b in done:
                continue
            size = m.Buffers(b).DataAsNumpy()
            if not isinstance(size, np.ndarray) or size.nbytes != 8:
                raise ModelError(f"{name} takes its output size from another op, not a constant; cannot resize")
            v = size.view(np.int32)
            v[0], v[1] = scaled(int(v[0]), fy, "an upsampled height"), scaled(int(v[1]), fx, "an upsampled width")
            done.add(b)
        elif name == "RESHAPE":
            targets = []
            tab = op.BuiltinOptions()
            if tab is not None:
                opts = schema.ReshapeOptions()
                opts.Init(tab.Bytes, tab.Pos)
                targets.append(opts.NewShapeAsNumpy())
            if op.InputsLength() > 1 and op.Inputs(1) >= 0:
                b = sg.Tensors(int(op.Inputs(1))).Buffer()
                data = m.Buffers(b).DataAsNumpy()
                if isinstance(data, np.ndarray) and b not in done:
                    targets.append(data.view(np.int32))
                    done.add(b)
            for vec in targets:
                if isinstance(vec, np.ndarray) and len(vec) == 3 and vec[1] > 0:
                    vec[1] = scaled(int(vec[1]), fy * fx, "a reshape's cell count")
                elif isinstance(vec, np.ndarray) and len(vec) == 4:
                    vec[1] = scaled(int(vec[1]), fy, "a reshape's height") if vec[1] > 0 else vec[1]
                    vec[2] = scaled(int(vec[2]), fx, "a reshape's width") if vec[2] > 0 else vec[2]
    return bytes(buf)
