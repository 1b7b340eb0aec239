"""Build the bundled YuNet face detector (``face_detection_yunet.tflite``) from libfacedetection's own weights.

YuNet (Wu, Peng and Yu, "YuNet: A Tiny Millisecond-level Face Detector", 2023) is libfacedetection's network
(BSD 3-clause, Shiqi Yu). Its weights are compiled into the library as named float arrays
(``backbone__model0_pw_weight`` ...); the ``yuface`` wheel on PyPI (2023.5.1) carries that library as
``yuface/libfacedetection.so``. This module reads those 53 arrays out of the shared object (a small ELF reader:
``.dynsym`` names, sizes and addresses), lays them out as a Keras graph of the same layers (a 3x3 stride-2
convolution, pointwise + depthwise pairs, 2x2 max-pooling, a three-level feature pyramid with nearest upsampling,
and per-level class, objectness, box and landmark heads), and converts it to a float TFLite file whose input is
a BGR image in 0..255, as the library's. Box decoding and NMS are in :mod:`edge_emotion.runtime.face_detection.yunet`.

Nothing is downloaded: pass the wheel (``pip download --no-deps yuface==2023.5.1``) or the ``.so``. With
``yuface`` importable, :func:`check_against_library` compares the converted graph's detections with the library's
own on real photos (scores to the percent, boxes to a pixel) and the build fails if they differ.

    python -m edge_emotion.export.yunet_rebuild yuface-2023.5.1-cp311-cp311-manylinux_2_17_x86_64.whl
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import struct
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

# the 53 layers in libfacedetection's order (its g_pFilters indices): the stride-2 head convolution, then
# pointwise/depthwise pairs
LAYERS = (["backbone__model0_pw", "backbone__model0_dp_pw", "backbone__model0_dp_dw"]
          + [f"backbone__model{m}_dp{k}_{t}" for m in range(1, 6) for k in (1, 2) for t in ("pw", "dw")]
          + [f"neck__lateral_convs__{i}_{t}" for i in range(3) for t in ("pw", "dw")]
          + [f"bbox_head__multi_level_{h}__{i}_{t}" for h in ("cls", "bbox", "obj", "kps") for i in range(3)
             for t in ("pw", "dw")])
HEADS = (("cls", 1), ("bbox", 4), ("obj", 1), ("kps", 10))
STRIDES = (8, 16, 32)
# the head convolution reads a 3x3 window of 3 channels, stored as 32 inputs (27 used, in (row, column, channel)
# order, channels as the library's BGR input)
HEAD_INPUTS = 32


def _elf_symbols(blob: bytes) -> dict[str, tuple[int, int]]:
    """Dynamic symbols of a little-endian ELF64 shared object: name -> (file offset, size in bytes)."""
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise ModelError("not a little-endian 64-bit ELF shared object (libfacedetection.so from the yuface wheel)")
    shoff, = struct.unpack_from("<Q", blob, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", blob, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", blob, shoff + i * shentsize) for i in range(shnum)]
    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
    dynsym = next((s for s in sections if s[1] == 11), None)  # SHT_DYNSYM
    if dynsym is None:
        raise ModelError("the shared object has no dynamic symbol table")
    strtab = sections[dynsym[6]]
    out = {}
    for off in range(dynsym[4], dynsym[4] + dynsym[5], 24):
        name_off, _info, _other, shndx, value, size = struct.unpack_from("<IBBHQQ", blob, off)
        if not size or shndx == 0 or shndx >= len(sections):
            continue
        sec = sections[shndx]
        start = strtab[4] + name_off
        name = blob[start:blob.index(b"\0", start)].decode()
        out[name] = (value - sec[3] + sec[4], size)
    return out


def read_weights(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 53 (weights, biases) float arrays of libfacedetection, from its ``.so`` or a ``yuface`` wheel."""
    path = Path(path)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/libfacedetection.so")]
            if not names:
                raise ModelError(f"{path} has no libfacedetection.so (expected the yuface wheel)")
            blob = z.read(names[0])
    else:
        blob = path.read_bytes()
    syms = _elf_symbols(blob)
    out = []
    for name in LAYERS:
        arrays = []
        for part in ("weight", "bias"):
            key = f"{name}_{part}"
            if key not in syms:
                raise ModelError(f"{path}: symbol {key} is missing; this is not the libfacedetection YuNet build "
                                 "this converter knows (yuface 2023.5.1)")
            off, size = syms[key]
            arrays.append(np.frombuffer(blob, "<f4", size // 4, off).copy())
        out.append((arrays[0], arrays[1]))
    return out


def build_keras(weights: Sequence[tuple[np.ndarray, np.ndarray]], height: int = 320, width: int = 320):
    """YuNet as a Keras model for a ``height`` x ``width`` x 3 BGR input (0..255; both multiples of 32). Outputs, for
    strides 8, 16 and 32 in turn: the face probability before its square root (1 channel), the box (4: centre
    offset and log size, in strides) and five landmarks (10: offsets in strides)."""
    import keras
    import tensorflow as tf
    from keras import layers

    if height % 32 or width % 32:
        raise ValueError(f"YuNet's input sides are multiples of 32, got {height}x{width}")
    inp = keras.Input((height, width, 3), name="image_bgr")

    def pw(x, i):
        w, b = weights[i]
        cout = b.size
        conv = layers.Conv2D(cout, 1, name=f"l{i}_pw")
        y = conv(x)
        conv.set_weights([w.reshape(cout, -1)[:, :x.shape[-1]].T[None, None], b])
        return y

    def dw(x, i, relu):
        w, b = weights[i]
        conv = layers.DepthwiseConv2D(3, padding="same", name=f"l{i}_dw")
        y = conv(x)
        conv.set_weights([w.reshape(3, 3, b.size, 1), b])  # stored tap-major: [9][channels]
        return layers.ReLU(name=f"l{i}_relu")(y) if relu else y

    def dp(x, i, relu=True):
        return dw(pw(x, i), i + 1, relu)

    w0, b0 = weights[0]
    head = layers.Conv2D(16, 3, strides=2, activation="relu", name="l0_head")
    x = head(layers.ZeroPadding2D(1, name="pad")(inp))
    kernel = w0.reshape(16, HEAD_INPUTS)[:, :27].reshape(16, 3, 3, 3).transpose(1, 2, 3, 0)
    head.set_weights([np.ascontiguousarray(kernel), b0])
    x = layers.MaxPooling2D(2, name="pool0")(dp(x, 1))
    x = dp(dp(x, 3), 5)
    x = dp(dp(x, 7), 9)
    f1 = dp(dp(layers.MaxPooling2D(2, name="pool1")(x), 11), 13)
    f2 = dp(dp(layers.MaxPooling2D(2, name="pool2")(f1), 15), 17)
    f3 = dp(dp(layers.MaxPooling2D(2, name="pool3")(f2), 19), 21)
    f3 = dp(f3, 27)

    def up(x, name):  # 2x nearest as one RESIZE_NEAREST_NEIGHBOR op (Keras' UpSampling2D converts to size-bound ops)
        return layers.Lambda(lambda t: tf.image.resize(t, 2 * tf.shape(t)[1:3], method="nearest"), name=name)(x)

    f2 = dp(layers.Add(name="add2")([up(f3, "up3"), f2]), 25)
    f1 = dp(layers.Add(name="add1")([up(f2, "up2"), f1]), 23)
    outs = []
    for lvl, f in enumerate((f1, f2, f3)):
        cls, box, obj, kps = (dp(f, 29 + 6 * h + 2 * lvl, relu=False) for h in range(len(HEADS)))
        # the library's score is sqrt(sigmoid(cls) * sigmoid(obj)); the graph gives the product (the root is taken
        # for the few candidates only)
        prob = layers.Multiply(name=f"score{lvl}")([layers.Activation("sigmoid")(cls), layers.Activation("sigmoid")(obj)])
        outs += [prob, box, kps]
    return keras.Model(inp, outs, name="yunet")


def to_tflite(model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def check_against_library(tflite: bytes, images: Sequence[np.ndarray]) -> dict:
    """Detections of the converted model (this package's decoder, the library's thresholds) against
    ``yuface.detect`` on the same images, cropped to multiples of 32, for faces scoring clearly above the
    threshold (over 0.54; the library truncates scores to whole percent). Raises :class:`ModelError` on a
    mismatch."""
    import yuface

    from ..runtime.face_detection.yunet import YuNetDetector

    det = YuNetDetector(model_content=tflite, score_threshold=0.5, input_side=None, native_boxes=True)
    worst_box, worst_score, n = 0.0, 0.0, 0
    for img in images:
        h, w = img.shape[0] // 32 * 32, img.shape[1] // 32 * 32
        img = np.ascontiguousarray(img[:h, :w])
        # faces scoring clearly above the threshold (the library reports scores as whole percent)
        with warnings.catch_warnings():  # the library warns about frames over 960 px, which it handles
            warnings.simplefilter("ignore", UserWarning)
            conf, boxes, _ = yuface.detect(img, conf=0.53)
        ours = [f for f in det.detect(img) if f.score > 0.54]
        if len(ours) != len(conf):
            raise ModelError(f"YuNet rebuild: {len(ours)} faces against the library's {len(conf)} on a {w}x{h} image")
        for c, b in zip(conf, boxes):
            best = min(ours, key=lambda f: abs(f.x - b[0]) + abs(f.y - b[1]))
            worst_box = max(worst_box, float(np.max(np.abs(np.array([best.x, best.y, best.w, best.h]) - b))))
            worst_score = max(worst_score, abs(best.score * 100 - float(c)))
            n += 1
    if worst_box > 1.5 or worst_score > 1.5:
        raise ModelError(f"YuNet rebuild differs from the library: box by {worst_box:.2f} px, score by "
                         f"{worst_score:.2f} points")
    return {"faces": n, "max_box_px": round(worst_box, 2), "max_score_points": round(worst_score, 2)}


def main(argv: list[str] | None = None) -> int:
    from ..runtime.face_detection.yunet import WEIGHTS_FILE

    p = argparse.ArgumentParser(prog="python -m edge_emotion.export.yunet_rebuild",
                                description="Build face_detection_yunet.tflite from libfacedetection's weights "
                                            "(the yuface wheel) and check it against the library.")
    p.add_argument("source", help="yuface-2023.5.1-*.whl or its yuface/libfacedetection.so")
    p.add_argument("--out", default=str(WEIGHTS_FILE), help="output .tflite (default: the bundled file)")
    p.add_argument("--images", nargs="*", default=[], help="photos to check the rebuild against the library on "
                                                           "(needs the wheel's yuface importable)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    content = to_tflite(build_keras(read_weights(a.source)))
    if a.images:
        import cv2

        with tempfile.TemporaryDirectory() as tmp:
            if a.source.endswith(".whl"):  # import yuface from the wheel itself
                zipfile.ZipFile(a.source).extractall(tmp)
                sys.path.insert(0, tmp)
            imgs = [cv2.imread(f) for f in a.images]
            log.info("checked against libfacedetection: %s", check_against_library(content, imgs))
    Path(a.out).write_bytes(content)
    log.info("wrote %s (%d bytes, sha256 %s)", a.out, len(content), hashlib.sha256(content).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
