"""The package's shape: no import cycles, and data loading, evaluation, calibration and the benchmark's
accuracy column work without the ``train`` extra (TensorFlow, Keras, matplotlib, scikit-learn)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edge_emotion"


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _runtime_imports(tree: ast.AST):
    """Every import statement, at module level or inside functions, except those under ``if TYPE_CHECKING:``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            node.body = []  # annotations only: never executed
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (lazy imports inside functions count: they run too)."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, (path, is_pkg) in mods.items():
        pkg = m if is_pkg else m.rsplit(".", 1)[0]
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges[m] |= {a.name for a in node.names if a.name in mods}
                continue
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in mods:
                    edges[m].add(sub)
                elif target in mods:
                    edges[m].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    edges = import_graph()
    assert len(edges) > 40 and "edge_emotion.train.loop" in edges["edge_emotion.train.cli"]  # the graph was read
    assert cycles(edges) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


BLOCK_TRAIN_EXTRA = """
import sys
for name in ('tensorflow', 'keras', 'matplotlib', 'sklearn', 'tf2onnx'):
    sys.modules[name] = None  # as if not installed: importing raises ImportError, find_spec gives None
"""


def test_evaluate_calibration_and_benchmark_need_no_train_extra(fer_npz):
    code = BLOCK_TRAIN_EXTRA + f"""
import json
from edge_emotion.datasets import load_dataset
from edge_emotion.evaluate import evaluate_file
from edge_emotion.export.calibration import calibration_images
from edge_emotion.runtime.zoo import resolve_model
from edge_emotion.benchmark import measure_row
import argparse

data = {str(fer_npz)!r}
model = resolve_model(None)
ev = evaluate_file(model, data, limit=300, tta=True)
calib = calibration_images(data, n=70)
args = argparse.Namespace(data=data, limit=300, threads=1, repeats=5, warmup=1, video="missing.mp4", frames=2)
row = measure_row(model, args)
print(json.dumps({{"accuracy": ev.accuracy, "tta": ev.tta_accuracy, "calib": list(calib.shape),
                  "test_faces": len(load_dataset(data)["test"]), "row_accuracy": row["accuracy"],
                  "heavy": [m for m in ('tensorflow', 'keras', 'matplotlib', 'sklearn') if sys.modules.get(m) is not None]}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert 0.5 < out["accuracy"] < 0.95 and 0.5 < out["tta"] < 0.95  # the bundled model on 300 real test faces
    assert out["calib"][0] == 70 and out["calib"][1:3] == [48, 48]
    assert out["test_faces"] == 3589 and abs(out["row_accuracy"] - out["accuracy"]) < 1e-9
