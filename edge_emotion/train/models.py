"""Model zoo, registered by name: ``edge_cnn`` (the shipped default), ``cnn``, ``alexnet``,
``alexnet48``, ``resnet50`` and ``densenet121``.

Every builder takes ``(input_shape, num_classes, multi_label)`` and returns an
uncompiled Keras model whose input is raw pixel values 0..255 (float32): the
rescaling to 0..1 is the first layer, so every exported format shares one input
contract and a full-int8 export maps pixels onto int8 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

__all__ = ["MODELS", "ModelSpec", "build_model", "load_backbone_weights", "register", "flip_averaged", "float32_copy", "as_float32", "policy_copy"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., keras.Model]
    input_shape: tuple[int, int, int]
    learning_rate: float
    description: str
    backbone: bool = False  # transfer-learning backbone with two-stage training


MODELS: dict[str, ModelSpec] = {}


def register(name: str, input_shape: tuple[int, int, int], learning_rate: float, description: str, backbone: bool = False):
    def deco(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        MODELS[name] = ModelSpec(name, fn, input_shape, learning_rate, description, backbone)
        return fn

    return deco


def _head(x, num_classes: int, multi_label: bool):
    return layers.Dense(num_classes, activation="sigmoid" if multi_label else "softmax", name="predictions", dtype="float32")(x)


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, name: str | None = None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=None if name is None else name + "_bn")(x)
    return layers.ReLU(name=None if name is None else name + "_relu")(x)


@register("edge_cnn", (48, 48, 1), 2e-3, "Compact VGG-style edge CNN for full-int8: plain 3x3 conv+BN+ReLU, GAP head, ~1.2 M params")
def edge_cnn(input_shape=(48, 48, 1), num_classes: int = 7, multi_label: bool = False, width: int = 32, dropout: float = 0.4,
             convs: tuple[int, int, int, int] | list[int] = (2, 2, 2, 2)) -> keras.Model:
    """The shipped default: four stages of ``convs[i]`` 3x3 convolutions (``width`` x 1, 2, 4, 8 filters), each
    followed by 2x2 max-pooling.

    Designed for full-integer int8: only Conv2D (BatchNorm folds into it), ReLU,
    max-pooling, global average pooling and one Dense layer, all ops that LiteRT
    and ONNX Runtime run natively in int8 with per-channel weights.
    """
    if len(convs) != 4 or not all(isinstance(n, int) and n >= 1 for n in convs):
        raise ValueError(f"edge_cnn: convs is four positive counts, one per stage, got {convs!r}")
    inp = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inp)
    w = width
    for stage, (filters, n) in enumerate(zip((w, 2 * w, 4 * w, 8 * w), convs), start=1):
        for i in range(n):
            x = _conv_bn(x, filters, name=f"s{stage}c{i + 1}")
        x = layers.MaxPooling2D(2, name=f"s{stage}pool")(x)
        if stage >= 2:
            x = layers.SpatialDropout2D(0.1, name=f"s{stage}drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inp, _head(x, num_classes, multi_label), name="edge_cnn")


@register("cnn", (48, 48, 1), 1e-3, "The seed notebooks' Keras CNN: Conv32-Conv64-pool-Conv128-pool-Conv256-pool, Dense 256/128")
def seed_cnn(input_shape=(48, 48, 1), num_classes: int = 7, multi_label: bool = False) -> keras.Model:
    inp = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0)(inp)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    for units in (256, 128):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(0.25)(x)
    return keras.Model(inp, _head(x, num_classes, multi_label), name="cnn")


def _alexnet(inp_shape, num_classes, multi_label, first_kernel, first_stride, dense, name, dense_bn=False, bn_before_relu=False,
             relu6=False):
    """AlexNet's five convolutions and two Dense layers.

    The seeds' order is conv+ReLU, then BatchNorm. ``bn_before_relu`` gives conv (no bias), BatchNorm, ReLU instead:
    the BatchNorm folds into the convolution on export and nothing is left between a ReLU and the next layer, where
    the seeds' order leaves a per-channel multiply-add after each ReLU in the int8 graph, with a range of its own.
    ``relu6`` caps every hidden activation at 6, which bounds each int8 range (the seeds' first Dense ReLU had a
    99.99th percentile 35x its 99.9th on FER faces).
    """
    act = (lambda: layers.ReLU(max_value=6.0)) if relu6 else layers.ReLU

    def conv(x, filters, kernel, strides=1, padding="same"):
        if bn_before_relu:
            x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
            return act()(layers.BatchNormalization()(x))
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu6" if relu6 else "relu")(x)
        return layers.BatchNormalization()(x)

    inp = keras.Input(inp_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0)(inp)
    x = conv(x, 96, first_kernel, first_stride, "valid" if first_stride > 1 else "same")
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = conv(x, 256, 5)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = conv(x, 384, 3)
    x = conv(x, 384, 3)
    x = conv(x, 256, 3)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    for _ in range(2):
        if dense_bn:
            x = layers.Dense(dense, use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = act()(x)
        else:
            x = layers.Dense(dense, activation="relu6" if relu6 else "relu")(x)
        x = layers.Dropout(0.5)(x)
    return keras.Model(inp, _head(x, num_classes, multi_label), name=name)


@register("alexnet", (227, 227, 3), 1e-4, "Classic AlexNet at 227x227x3 as in the seeds (11x11/4 stem, 5 convs, Dense 4096 x2 with BatchNorm)")
def alexnet(input_shape=(227, 227, 3), num_classes: int = 7, multi_label: bool = False, dense_bn: bool = True) -> keras.Model:
    """The seeds' AlexNet at 227x227x3 (72 M parameters). Its plain Dense layers diverge under Adam at 1e-4 as
    alexnet48's do (twelve steps on real FER faces resized to 227x227: loss 4-8 against 1.95 at chance), so each
    Dense layer is followed by BatchNorm before its ReLU by default; ``dense_bn=False`` gives the plain layers."""
    return _alexnet(input_shape, num_classes, multi_label, 11, 4, 4096, "alexnet", dense_bn)


@register("alexnet48", (48, 48, 1), 5e-4, "AlexNet's design sized for 48x48 grayscale (5x5/1 stem, same conv widths, Dense 1024 x2 with BatchNorm)")
def alexnet48(input_shape=(48, 48, 1), num_classes: int = 7, multi_label: bool = False, dense_bn: bool = True,
              bn_before_relu: bool = False, relu6: bool = False) -> keras.Model:
    """AlexNet at 48x48x1. Without normalisation its 9,216-input Dense layer blows up under Adam at 5e-4 (training
    loss 5-11 in the first steps; on 768 FER images, 4 epochs ended at loss 3.2 and 22 % accuracy, against 1.8
    and 37 % with BatchNorm), so by default each Dense layer is followed by BatchNorm before its ReLU;
    ``dense_bn=False`` gives the plain layers. ``bn_before_relu`` and ``relu6``: see ``_alexnet`` (the int8 layout)."""
    return _alexnet(input_shape, num_classes, multi_label, 5, 1, 1024, "alexnet48", dense_bn, bn_before_relu, relu6)


def load_backbone_weights(base: keras.Model, weights: str, name: str) -> None:
    """Load a local weights file into a keras.applications backbone built without its top.

    Takes the file keras.applications itself caches (``~/.keras/models/
    resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``, legacy HDF5) or a Keras 3
    ``.weights.h5``. Nothing is downloaded: machines without internet copy the file in.
    """
    from pathlib import Path

    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights {path} not found. Nothing is downloaded: copy the ImageNet file keras.applications "
            f"caches (e.g. {name}_weights_tf_dim_ordering_tf_kernels_notop.h5 from ~/.keras/models) to this machine "
            "and pass its path with --backbone-weights")
    try:
        base.load_weights(str(path))
    except Exception as e:  # Keras raises ValueError/KeyError from deep inside h5 loading
        raise ValueError(
            f"{path.name} does not fit the {name} backbone without its top ({type(e).__name__}: {e}). "
            f"Use the '_notop' weights file of {name} (include_top=False)") from e


def _backbone_model(app_fn, preprocess, input_shape, num_classes, multi_label, weights, name):
    inp = keras.Input(input_shape, name="image")
    x = preprocess(inp)  # keras.applications preprocessing expects 0..255 input
    base = app_fn(include_top=False, weights=None, input_shape=input_shape, pooling="avg")
    base.name = "backbone"
    if weights:
        load_backbone_weights(base, weights, name)
    x = base(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inp, _head(x, num_classes, multi_label), name=name)


@register("resnet50", (96, 96, 3), 1e-3, "keras.applications ResNet50 backbone + new head; two-stage (frozen, then fine-tune)", backbone=True)
def resnet50(input_shape=(96, 96, 3), num_classes: int = 7, multi_label: bool = False, weights: str | None = None) -> keras.Model:
    from keras.applications import resnet

    return _backbone_model(resnet.ResNet50, resnet.preprocess_input, input_shape, num_classes, multi_label, weights, "resnet50")


@register("densenet121", (96, 96, 3), 1e-3, "keras.applications DenseNet121 backbone + new head; two-stage (frozen, then fine-tune)", backbone=True)
def densenet121(input_shape=(96, 96, 3), num_classes: int = 7, multi_label: bool = False, weights: str | None = None) -> keras.Model:
    from keras.applications import densenet

    return _backbone_model(densenet.DenseNet121, densenet.preprocess_input, input_shape, num_classes, multi_label, weights, "densenet121")


def build_model(name: str, num_classes: int, multi_label: bool = False, input_shape: tuple[int, int, int] | None = None, **kwargs) -> keras.Model:
    """Build a registered model by name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    spec = MODELS[name]
    import inspect

    accepted = set(inspect.signature(spec.build).parameters) - {"input_shape", "num_classes", "multi_label"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(sorted(accepted)) or 'none'}")
    return spec.build(input_shape=input_shape or spec.input_shape, num_classes=num_classes, multi_label=multi_label, **kwargs)


def _set_policy(obj, policy: str):
    """A copy of a (model or layer) config with every dtype policy in it set to ``policy``."""
    if isinstance(obj, dict):
        if obj.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return policy
        return {k: _set_policy(v, policy) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_set_policy(v, policy) for v in obj]
    return obj


def float32_copy(model: keras.Model) -> keras.Model:
    """The same model with float32 layers and no optimizer state: what ships.

    A mixed-precision model would export bf16 casts, and a model loaded from a training
    checkpoint carries its optimizer's slots (two more copies of every weight with Adam).
    """
    return policy_copy(model, "float32")


def as_float32(model: keras.Model) -> keras.Model:
    """``model`` itself when every layer (nested ones too) computes in float32, else its :func:`float32_copy`: how a
    model is run to be measured, so a checkpoint of a mixed-bfloat16 run scores what its exports will. A float32
    model is not rebuilt (any model Keras loads runs, subclassed ones included)."""

    def policies(layers):
        for layer in layers:
            yield layer.dtype_policy.name
            yield from policies(getattr(layer, "layers", []))

    return model if all(p == "float32" for p in policies(model.layers)) else float32_copy(model)


def policy_copy(model: keras.Model, policy: str) -> keras.Model:
    """The same model (same weights) computing under ``policy`` (e.g. ``mixed_bfloat16``), its output layers kept
    float32 as Keras advises for mixed precision; works for any functional model, whatever options built it."""
    config = model.get_config()
    out = config.get("output_layers", [])
    outputs = frozenset([out[0]] if out and isinstance(out[0], str) else [o[0] for o in out])  # one output: [name, 0, 0]
    config["layers"] = [_set_policy(layer, "float32" if layer.get("name") in outputs else policy)
                        for layer in config["layers"]]
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


@keras.saving.register_keras_serializable(package="edge_emotion")
class FlipBatch(layers.Layer):
    """``x`` (N, H, W, C) -> (2N, H, W, C): the batch followed by its left-right mirror images."""

    def call(self, x):
        return keras.ops.concatenate([x, keras.ops.flip(x, axis=2)], axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])


@keras.saving.register_keras_serializable(package="edge_emotion")
class MeanOfHalves(layers.Layer):
    """(2N, K) -> (N, K): the mean of the batch's first and second half (a sample and its mirror image)."""

    def call(self, y):
        return keras.ops.mean(keras.ops.reshape(y, (2, -1, y.shape[-1])), axis=0)

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])


def flip_averaged(model: keras.Model) -> keras.Model:
    """``model`` with horizontal-flip test-time averaging in its graph: each input runs as itself and as its
    mirror image in ONE batched pass through the same weights (the weights are stored once), and the two
    probability vectors are averaged. Twice the compute of ``model`` per face, one call, one artifact."""
    inp = keras.Input(model.input_shape[1:], name="image")
    out = MeanOfHalves(name="flip_mean", dtype="float32")(model(FlipBatch(name="flip_batch")(inp)))
    return keras.Model(inp, out, name=f"{model.name}_flip")
