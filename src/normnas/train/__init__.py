"""Training and evaluation: fit, LR schedules by name, metrics, cost (params, FLOPs, latency)."""

from normnas.train.config import OPTIMIZERS, TrainConfig
from normnas.train.cost import (
    Latency,
    OpCounts,
    count_flops,
    count_macs,
    count_ops,
    count_params,
    measure_latency,
)
from normnas.train.fit import EpochRecord, TrainResult, fit
from normnas.train.metrics import Metrics, evaluate
from normnas.train.schedules import SCHEDULE_NAMES, make_scheduler

__all__ = [
    "OPTIMIZERS",
    "SCHEDULE_NAMES",
    "EpochRecord",
    "Latency",
    "Metrics",
    "OpCounts",
    "TrainConfig",
    "TrainResult",
    "count_flops",
    "count_macs",
    "count_ops",
    "count_params",
    "evaluate",
    "fit",
    "make_scheduler",
    "measure_latency",
]
