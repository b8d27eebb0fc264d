"""Latency predicted per target runtime: lookup tables of a space's blocks in context,
profiled on a target (torch, torchscript, onnxruntime, cuda) at a thread count and batch,
summed and corrected into a predictor that a search uses instead of timing each trial."""

from normnas.latency.predict import LatencyPredictor, fit_correction
from normnas.latency.protocol import BUSY_LIMIT, Load, LoadWatch, time_call
from normnas.latency.table import LatencyTable, LatencyTableError
from normnas.latency.targets import TARGETS, Target

__all__ = [
    "BUSY_LIMIT", "TARGETS", "LatencyPredictor", "LatencyTable", "LatencyTableError", "Load",
    "LoadWatch", "Target", "fit_correction", "time_call",
]  # fmt: skip
