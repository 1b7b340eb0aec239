"""A training run's configuration: every choice that shapes the model, saved as ``<run>/config.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..datasets import DEFAULT_DATA

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    model: str = "edge_cnn"
    data: str = DEFAULT_DATA
    label_set: str = "fer7"
    out: str = "runs/edge_cnn"
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float | None = None  # None: the model's registered rate
    warmup_epochs: int = 1
    lr_schedule: str = "cosine"  # cosine (warm-up, then cosine decay) | constant (SWA phase)
    label_smoothing: float = 0.1
    augment: bool = True
    random_erasing: float = 0.0  # probability of erasing one random patch per training image (0: off)
    weight_decay: float = 0.0  # decoupled weight decay (AdamW) on kernels; 0: plain Adam
    average_last: int = 0  # keep the last K epochs' weights; the model is their average if that wins on val
    balance: str = "none"  # none | weights | sqrt | oversample
    patience: int = 15
    seed: int = 1234
    limit: int | None = None  # use only the first N images of each split (tests, smoke runs)
    mixed_precision: str = "auto"  # auto | bf16 | off
    ferplus_mode: str = "majority"
    ferplus_votes: str | None = None
    init_from: str | None = None  # .keras model whose body starts this run (two-stage transfer)
    backbone_weights: str | None = None  # local weights file for resnet50/densenet121
    head_epochs: int = 0  # stage 1: frozen body, new head; then fine-tune the rest
    finetune_lr_factor: float = 0.1
    model_kwargs: dict = field(default_factory=dict)
    report: bool = True

    @classmethod
    def load(cls, run_dir: str | Path) -> "TrainConfig":
        """The configuration a run was started with (``<run>/config.json``)."""
        return cls(**json.loads((Path(run_dir) / "config.json").read_text()))

    def save(self) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / "config.json").write_text(json.dumps(self.__dict__, indent=1))
