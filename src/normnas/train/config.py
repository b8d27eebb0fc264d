"""TrainConfig: every knob of one training run, validated on construction."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")


@dataclass
class TrainConfig:
    """How `fit` trains. `sgd` is SGD with Nesterov momentum; `amp` only acts on CUDA.

    `schedule` is a name of `make_scheduler` (or a callable step -> lr factor) and
    `schedule_options` its options (in optimizer steps); `warmup_epochs` adds a linear
    warm-up to any schedule (onecycle turns it into its `pct_start`).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    wd_on_norm_and_bias: bool = False
    label_smoothing: float = 0.0
    schedule: str | Callable[[int], float] = "cosine"
    schedule_options: dict[str, Any] = field(default_factory=dict)
    warmup_epochs: float = 0
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    max_time_s: float | None = None
    amp: bool = True
    channels_last: bool = False
    bn_momentum: float | None = None
    # CPU threads of the run; None: the cores other processes leave free (train.threads),
    # or $NORMNAS_THREADS when set. Not a result-changing setting, so no study records it.
    threads: int | None = None

    def __post_init__(self) -> None:
        def bad(name: str, must: str) -> ValueError:
            return ValueError(f"TrainConfig.{name} {must}, got {getattr(self, name)!r}")

        def finite(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise bad("epochs", "must be an integer >= 1")
        if (
            not isinstance(self.batch_size, int)
            or isinstance(self.batch_size, bool)
            or self.batch_size < 1
        ):
            raise bad("batch_size", "must be an integer >= 1")
        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        self.optimizer = self.optimizer.lower()
        if not finite(self.lr) or self.lr <= 0:
            raise bad("lr", "must be a finite number > 0")
        if not finite(self.momentum) or not 0 <= self.momentum < 1:
            raise bad("momentum", "must be in [0, 1)")
        if self.optimizer == "sgd" and self.momentum == 0:
            raise bad("momentum", "must be > 0 for sgd (Nesterov needs momentum)")
        if not finite(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "must be a finite number >= 0")
        if not finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "must be in [0, 1)")
        if not (isinstance(self.schedule, str) or callable(self.schedule)):
            raise bad("schedule", "must be a schedule name or a callable step -> factor")
        if isinstance(self.schedule, str):
            from normnas.train.schedules import SCHEDULE_NAMES

            if self.schedule.lower() not in SCHEDULE_NAMES:
                raise bad("schedule", f"must be one of {', '.join(SCHEDULE_NAMES)}")
            self.schedule = self.schedule.lower()
        if not isinstance(self.schedule_options, dict):
            raise bad("schedule_options", "must be a dict")
        if not finite(self.warmup_epochs) or not 0 <= self.warmup_epochs <= self.epochs:
            raise bad("warmup_epochs", f"must be in [0, epochs={self.epochs}]")
        if self.grad_clip is not None and (not finite(self.grad_clip) or self.grad_clip <= 0):
            raise bad("grad_clip", "must be None or a finite number > 0")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise bad("seed", "must be an integer")
        if not isinstance(self.device, str) or self.device.split(":")[0] not in (
            "cpu",
            "cuda",
            "mps",
        ):
            raise bad("device", "must be 'cpu', 'cuda', 'cuda:N' or 'mps'")
        if self.max_time_s is not None and (not finite(self.max_time_s) or self.max_time_s <= 0):
            raise bad("max_time_s", "must be None or a number of seconds > 0")
        if self.bn_momentum is not None and (
            not finite(self.bn_momentum) or not 0 < self.bn_momentum <= 1
        ):
            raise bad("bn_momentum", "must be None or in (0, 1]")
        if self.threads is not None and (
            not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1
        ):
            raise bad("threads", "must be None or an integer >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("threads")  # how fast, not what: left out of fingerprints and checkpoints
        if callable(self.schedule):
            d["schedule"] = getattr(self.schedule, "__name__", "callable")
        return d
