"""A training run's configuration: every choice that shapes the model, saved as ``<run>/config.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..datasets import DEFAULT_DATA

__all__ = ["OPTIMIZERS", "TrainConfig"]

OPTIMIZERS = ("adam", "sgd")


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
    weight_decay: float = 0.0  # decoupled weight decay on kernels (Adam becomes AdamW); 0: none
    optimizer: str = "adam"  # adam (AdamW with weight_decay) | sgd (momentum 0.9, Nesterov; the same decay on kernels)
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
    # knowledge distillation / soft targets (soft_targets.py): the target is (1 - distill_weight) * one-hot label
    # + distill_weight * soft target; the soft target is the teachers' flip-averaged probabilities (mixed with FER+
    # votes by ferplus_soft where an image has them), or the FER+ votes alone when there are no teachers
    teachers: list[str] = field(default_factory=list)
    # image: the teachers' flip-averaged predictions on each un-augmented training image, computed once | augmented:
    # the teachers predict every training batch as the student sees it (after augmentation and mixup), each step
    distill_views: str = "image"
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    ferplus_soft: float = 0.0
    mixup: float = 0.0  # Beta(a, a) parameter of mixup within each batch; 0: off
    # refit: train on train + val with a recipe chosen beforehand on val. Nothing is chosen on val: no best
    # checkpoint, no early stopping; the run keeps its last epoch, or with average_last K the average of its last K
    # epochs (+ BatchNorm re-estimation). val is still logged, but it is no longer held out.
    refit: bool = False
    model_kwargs: dict = field(default_factory=dict)
    report: bool = True

    def __post_init__(self) -> None:
        for name in ("distill_weight", "ferplus_soft"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a share in [0, 1], got {getattr(self, name)}")
        if self.distill_temperature <= 0:
            raise ValueError(f"distill_temperature must be positive, got {self.distill_temperature}")
        if self.mixup < 0:
            raise ValueError(f"mixup is a Beta distribution parameter >= 0 (0: off), got {self.mixup}")
        if self.teachers and self.distill_weight == 0:
            raise ValueError("teachers given but distill_weight is 0: set how much of the target comes from them "
                             "(e.g. --distill-weight 0.5)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer is one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer == "sgd" and self.learning_rate is None:
            raise ValueError("optimizer 'sgd' needs a learning rate (--lr): the models' registered rates are Adam's, "
                             "about ten times too small for SGD (0.01 is the usual start)")
        if self.distill_views not in ("image", "augmented"):
            raise ValueError(f"distill_views is 'image' or 'augmented', got {self.distill_views!r}")
        if self.distill_views == "augmented" and not self.teachers:
            raise ValueError("distill_views='augmented' needs teachers (--teacher MODEL.keras)")
        if self.distill_views == "augmented" and self.ferplus_soft > 0:
            raise ValueError("FER+ votes belong to the original image, not to an augmented view: ferplus_soft needs "
                             "distill_views='image'")
        if self.refit and self.uses_soft_targets:
            raise ValueError("refit (train + val) with soft targets is not supported: the teachers' and votes' caches "
                             "are per split; refit a recipe without --distill-weight")
        if self.ferplus_soft > 0 and self.distill_weight == 0:
            raise ValueError("ferplus_soft given but distill_weight is 0: the votes are part of the soft target, which "
                             "distill_weight mixes in (e.g. --distill-weight 0.5)")

    @property
    def uses_soft_targets(self) -> bool:
        return self.distill_weight > 0

    @classmethod
    def load(cls, run_dir: str | Path) -> "TrainConfig":
        """The configuration a run was started with (``<run>/config.json``)."""
        return cls(**json.loads((Path(run_dir) / "config.json").read_text()))

    def save(self) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / "config.json").write_text(json.dumps(self.__dict__, indent=1))
