"""What an evaluator returns for one architecture, whatever evaluates it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from normnas.spaces.base import Arch

Status = Literal["ok", "diverged", "failed", "infeasible", "pruned", "timeout"]

# Called after each epoch/fidelity step with (step, valid_accuracy); returns True to stop
# (pruned). The runner wires it to Optuna's trial.report / should_prune.
ReportFn = Callable[[int, float], bool]


@dataclass
class TrialResult:
    """Metrics of one evaluated architecture. Accuracy is a fraction in [0, 1]."""

    status: Status
    accuracy: float | None = None  # validation accuracy: the only accuracy a search reads
    params: int | None = None
    # one forward pass on one sample: every op (normnas.train.cost's convention), and the
    # multiply-adds of conv/linear alone
    flops: int | None = None
    macs: int | None = None
    latency_ms: float | None = None  # median, batch 1
    cost_s: float = 0.0  # seconds consumed: measured, or simulated by a table
    curve: list[float] = field(default_factory=list)  # valid accuracy per epoch
    error: str | None = None  # one line, when status is failed/diverged/infeasible
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Evaluator(Protocol):
    """Training, a benchmark table, a supernet or a proxy: anything that scores an arch."""

    def evaluate(
        self, arch: Arch, fidelity: int | None = None, report: ReportFn | None = None
    ) -> TrialResult: ...
