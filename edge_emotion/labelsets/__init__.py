"""Label sets are data: one JSON file per set in this folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).parent


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: tuple[str, ...]
    multi_label: bool
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def available() -> list[str]:
    return sorted(p.stem for p in _HERE.glob("*.json"))


def load_label_set(name_or_path: str | Path) -> LabelSet:
    """Load a label set by name (``fer7``, ``ferplus8``, ``emotic26``) or from a JSON file."""
    p = Path(name_or_path)
    if not p.suffix:
        p = _HERE / f"{name_or_path}.json"
    if not p.is_file():
        raise ValueError(f"unknown label set {name_or_path!r}; available: {', '.join(available())} or a JSON file path")
    d = json.loads(p.read_text())
    return LabelSet(d["name"], tuple(d["labels"]), bool(d.get("multi_label", False)), d.get("description", ""))
