"""One preprocessing: the runtime (OpenCV) and training (TensorFlow) paths give the same model input.

Real inputs: FER-2013 PrivateTest faces (what the models were trained on) and the astronaut's face
cut out of the bundled sample photo (what the runtime crops from a frame).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_emotion.errors import InputError, ModelError
from edge_emotion.metadata import ModelMetadata
from edge_emotion.preprocessing import AGREEMENT_TOLERANCE, Preprocessing
from edge_emotion.runtime.crop import crop_face


@pytest.fixture(scope="module")
def face(face_box) -> tuple[int, int, int]:
    """The sample photo's face as a square (x, y, side) of whole pixels, as the default pipeline finds it."""
    x, y, w, h = face_box
    side = int(round(max(w, h)))
    assert side > 2 * 48  # a face that the 48-px models' crop shrinks
    return int(round(x)), int(round(y)), side


def _both(prep: Preprocessing, crops_bgr: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(runtime on BGR crops, TensorFlow on the same crops as RGB) for crops of one size."""
    pytest.importorskip("tensorflow")
    runtime = prep.batch(crops_bgr, order="bgr")
    rgb = np.stack([c[..., ::-1] if c.ndim == 3 else c[..., None] for c in crops_bgr])
    return runtime, np.asarray(prep.tf_batch(rgb))


def _assert_agree(a: np.ndarray, b: np.ndarray, std: float = 1.0) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    d = np.abs(a - b) * std  # in pixel levels
    assert d.max() <= AGREEMENT_TOLERANCE["max_abs"], d.max()
    assert d.mean() <= AGREEMENT_TOLERANCE["mean_abs"], d.mean()


@pytest.mark.parametrize("resize", ["bilinear", "area"])
@pytest.mark.parametrize("size, color", [((48, 48), "gray"), ((64, 64), "rgb"), ((227, 227), "rgb"), ((96, 96), "gray")])
def test_runtime_and_training_paths_agree_on_a_photo_crop(astronaut, face, size, color, resize):
    """The sample face (about 110 px) shrunk (48, 64, 96) or enlarged (227), by either resize method."""
    x, y, s = face
    crop = np.ascontiguousarray(astronaut[y : y + s, x : x + s])
    prep = Preprocessing(size, color, mean=127.5, std=127.5, resize=resize)
    runtime, tf = _both(prep, [crop])
    _assert_agree(runtime, tf, std=127.5)
    assert runtime.shape == (1, *size, 1 if color == "gray" else 3)
    assert -1.0 <= runtime.min() and runtime.max() <= 1.0 and runtime.std() > 0.1


def test_runtime_and_training_paths_agree_on_fer_faces(fer_test):
    """FER-2013 faces as the models see them in training (48x48 gray) and enlarged for the 227-px AlexNet."""
    x, _ = fer_test
    faces = [np.ascontiguousarray(f) for f in x[:64].reshape(-1, 48, 48)]
    same = Preprocessing((48, 48), "gray")
    runtime, tf = _both(same, faces)
    np.testing.assert_array_equal(runtime, tf)  # nothing to resize or convert: exactly equal
    _assert_agree(*_both(Preprocessing((227, 227), "rgb"), faces))


def test_the_wrong_resize_is_caught(astronaut, face):
    """The agreement check can fail: bilinear without area averaging differs from 'area' on a shrunk face."""
    pytest.importorskip("tensorflow")
    x, y, s = face
    crop = np.ascontiguousarray(astronaut[y : y + s, x : x + s])
    area = Preprocessing((48, 48), "gray", resize="area").batch([crop])
    plain = Preprocessing((48, 48), "gray", resize="bilinear").batch([crop])
    assert np.abs(area - plain).max() > AGREEMENT_TOLERANCE["max_abs"]


def test_classifier_uses_the_models_preprocessing(tmp_path):
    from edge_emotion.runtime.classifier import EmotionClassifier
    from edge_emotion.runtime.zoo import resolve_model

    clf = EmotionClassifier(resolve_model(None))
    assert clf.preprocessing == Preprocessing.from_metadata(clf.meta)
    crops = [np.full((100, 80, 3), v, np.uint8) for v in (0, 128, 255)]
    np.testing.assert_array_equal(clf.preprocess(crops), clf.preprocessing.batch(crops))


def test_crop_averages_pixels_when_it_shrinks_a_face(astronaut, face):
    """With antialias the sample face cut to 48 px equals OpenCV's area resize of the same square; without, it aliases."""
    x, y, s = face
    reference = cv2.resize(astronaut[y : y + s, x : x + s], (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
    smooth = crop_face(astronaut, (x, y, s, s), (48, 48), margin=0.0, antialias=True)
    aliased = crop_face(astronaut, (x, y, s, s), (48, 48), margin=0.0)
    err_smooth = np.abs(smooth - reference).mean()
    err_aliased = np.abs(aliased - reference).mean()
    assert err_smooth < 1.0, err_smooth
    assert err_aliased > 3 * err_smooth, (err_aliased, err_smooth)


def test_crop_at_the_frame_edge_and_rotated(astronaut, face):
    """Faces cut by the frame border keep their scale (replicated border); an eye-aligned crop is still area-averaged."""
    edge = crop_face(astronaut, (-40, 400, 200, 200), (48, 48), margin=0.1)
    assert edge.shape == (48, 48, 3)
    x, y, s = face
    eyes = np.array([[x + 0.3 * s, y + 0.4 * s], [x + 0.7 * s, y + 0.45 * s]], np.float32)
    rot = crop_face(astronaut, (x, y, s, s), (48, 48), margin=0.0, landmarks=eyes, align=True, antialias=True)
    rot_aliased = crop_face(astronaut, (x, y, s, s), (48, 48), margin=0.0, landmarks=eyes, align=True)
    # area averaging removes high-frequency energy that plain bilinear sampling folds into the crop
    lap = lambda im: float(np.abs(cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.CV_32F)).mean())  # noqa: E731
    assert lap(rot) < lap(rot_aliased)


def test_bad_crops_are_refused_with_a_clear_error():
    prep = Preprocessing((48, 48), "gray")
    with pytest.raises(InputError, match="dtype float32"):
        prep.batch([np.zeros((48, 48), np.float32)])
    with pytest.raises(InputError, match="non-zero sides"):
        prep.batch([np.zeros((0, 48, 3), np.uint8)])
    with pytest.raises(InputError, match="shape"):
        prep.batch([np.zeros((48, 48, 4), np.uint8)])


def test_metadata_carries_the_transform():
    prep = Preprocessing.for_input_shape((227, 227, 3), resize="area")
    meta = ModelMetadata(labels=["a", "b"], **prep.metadata_fields())
    assert Preprocessing.from_metadata(ModelMetadata.from_json(meta.to_json())) == prep
    # artifacts written before the field existed: their crops were sampled bilinearly
    old = meta.to_dict()
    del old["resize"]
    assert ModelMetadata.from_dict(old).resize == "bilinear"
    with pytest.raises(ModelError, match="resize"):
        ModelMetadata(labels=["a"], resize="cubic")
