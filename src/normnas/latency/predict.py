"""Predict a network's latency from a table: the sum of its units' entries, corrected.

latency = scale * sum(entries of the units it runs) + constant, per target and table.
The constant is the overhead paid once per network (the runtime's call, the input and
output), fitted on the whole networks timed while profiling. The scale stays 1 unless the
sum misses measurably: when, with the constant alone, the mean absolute relative error on
those networks exceeds `SCALE_WHEN` (3%), scale and constant are fitted together by least
squares (measured ~ scale * sum + constant; the scale alone, through 0, when that constant
would be negative) and kept if that lowers the error. Which one
was used, and the errors of both, are written in the table's `fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from normnas.latency import blocks
from normnas.latency.table import LatencyTable, LatencyTableError
from normnas.spaces.base import Arch, SearchSpace

SCALE_WHEN = 0.03


def folds_constants(target: str) -> bool:
    """Does the runtime fold constant subgraphs when it loads a model (ONNX Runtime does)?"""
    return target == "onnxruntime"


def _error(sums: np.ndarray, measured: np.ndarray, scale: float, constant: float) -> float:
    return float(np.mean(np.abs(scale * sums + constant - measured) / measured))


def fit_correction(sums: Sequence[float], measured: Sequence[float]) -> dict[str, Any]:
    """The predictor's correction fitted on whole networks: {kind, scale, constant, errors}."""
    s, m = np.asarray(sums, float), np.asarray(measured, float)
    if len(s) == 0:
        return {"kind": "none", "scale": 1.0, "constant": 0.0}
    constant = float(np.mean(m - s))
    out: dict[str, Any] = {"kind": "constant", "scale": 1.0, "constant": constant,
                           "error_constant": _error(s, m, 1.0, constant)}  # fmt: skip
    if out["error_constant"] > SCALE_WHEN and len(s) >= 3 and np.ptp(s) > 0:
        scale, const2 = (float(v) for v in np.polyfit(s, m, 1))
        if const2 < 0:  # a negative overhead would predict < 0 ms for small networks
            scale, const2 = float(s @ m / (s @ s)), 0.0
        error = _error(s, m, scale, const2)
        out["error_linear"] = error
        if scale > 0 and error < out["error_constant"]:
            out.update(kind="scale+constant", scale=scale, constant=const2)
    return out


class LatencyPredictor:
    """`predict(arch)`: the latency (ms) of `arch`'s network on the table's target."""

    def __init__(self, table: LatencyTable, space: SearchSpace) -> None:
        self.table, self.space = table, space
        self.shape = tuple(table.key.get("input_shape", (3, 32, 32)))
        self.classes = int(table.key.get("classes", 10))
        self.scale = float(table.fit.get("scale", 1.0))
        self.constant = float(table.fit.get("constant", 0.0))
        self.fold = folds_constants(str(table.key.get("target")))

    def unit_sum(self, arch: Arch) -> float:
        total = 0.0
        for unit in blocks.units(self.space, arch, self.shape, self.classes, self.fold):
            entry = self.table.entries.get(unit)
            if entry is None:
                raise LatencyTableError(
                    f"latency table {self.table.path or ''} has no entry {unit!r}: "
                    "it was profiled for another space; profile this one"
                )
            total += entry
        return total

    def predict(self, arch: Arch) -> float:
        return self.scale * self.unit_sum(arch) + self.constant

    @property
    def label(self) -> str:
        k = self.table.key
        return f"{k.get('target')}, {k.get('threads')} thread(s), batch {k.get('batch')}"
