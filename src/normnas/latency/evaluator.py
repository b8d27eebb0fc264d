"""A judge whose latency is predicted for a target instead of timed on each trial.

`PredictedLatency(inner, predictor, space)` wraps any judge (training, a supernet,
proxies, a table): its constraint check (`cost_metrics`) and its results get `latency_ms`
from the predictor, and the inner judge is told not to time (`measure_latency = False`
where it has that switch). Each result records `extra` `latency_target` (the target's
label) and `latency_predicted = True`, so the leaderboard and the report know to measure
the finalists for real on that target and show both figures.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any

from normnas.latency.predict import LatencyPredictor
from normnas.search.result import TrialResult
from normnas.search.spaces import network_part
from normnas.spaces.base import Arch, SearchSpace


class PredictedLatency:
    def __init__(self, inner: Any, predictor: LatencyPredictor, space: SearchSpace) -> None:
        self.inner, self.predictor, self.space = inner, predictor, space
        if hasattr(inner, "measure_latency"):
            inner.measure_latency = False  # no timing loop per trial
        self._time_limit = _accepts(inner.evaluate, "time_limit_s")

    def __getattr__(self, name: str) -> Any:  # everything else is the inner judge's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def latency_ms(self, arch: Arch) -> float:
        _, net_arch, _ = network_part(self.space, arch)
        return self.predictor.predict(net_arch)

    def cost_metrics(
        self, arch: Arch, names: Collection[str] | None = None, model: Any = None
    ) -> dict[str, float]:
        wanted = list(names) if names is not None else ["params", "flops", "macs", "latency_ms"]
        rest = [n for n in wanted if n != "latency_ms"]
        out: dict[str, float] = {}
        if rest and hasattr(self.inner, "cost_metrics"):
            out.update(self.inner.cost_metrics(arch, rest))
        if "latency_ms" in wanted:
            out["latency_ms"] = self.latency_ms(arch)
        return out

    def evaluate(
        self,
        arch: Arch,
        fidelity: int | None = None,
        report: Any = None,
        time_limit_s: float | None = None,
    ) -> TrialResult:
        if self._time_limit:
            result = self.inner.evaluate(arch, fidelity, report, time_limit_s=time_limit_s)
        else:
            result = self.inner.evaluate(arch, fidelity, report)
        result.latency_ms = self.latency_ms(arch)
        result.extra = {**(result.extra or {}), "latency_target": self.predictor.label,
                        "latency_predicted": True}  # fmt: skip
        return result


def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
