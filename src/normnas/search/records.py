"""How a trial is recorded in the study (user attributes) and read back.

Per evaluated trial the runner writes three user attributes: `arch` (the space's string),
`status` (a TrialResult status, or `interrupted`) and `result` (a dict: canonical `key`,
metrics, `cost_s`, `curve`, `error`, `extra`), plus `worker` ("host:pid") before evaluating.
A repeat of an architecture already evaluated gets `duplicate_of` (the trial number it
reuses) instead of `result`. Few writes per trial keep SQLite studies fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from normnas.search.result import TrialResult

ATTR_ARCH = "arch"
ATTR_STATUS = "status"
ATTR_RESULT = "result"
ATTR_DUPLICATE = "duplicate_of"
ATTR_WORKER = "worker"
ATTR_RETRY = "retry_of"

# statuses of evaluations that spent compute: they count toward a trial budget
COUNTED = frozenset({"ok", "failed", "diverged", "pruned", "timeout"})

OBJECTIVES: dict[str, str] = {
    "accuracy": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "latency": "minimize",
}
_FIELD = {"accuracy": "accuracy", "params": "params", "flops": "flops", "latency": "latency_ms"}


def check_objectives(objectives: Iterable[str]) -> tuple[str, ...]:
    objs = tuple(objectives)
    if not objs:
        raise ValueError("at least one objective is needed; valid: " + ", ".join(OBJECTIVES))
    for o in objs:
        if o not in OBJECTIVES:
            raise ValueError(f"unknown objective {o!r}; valid: {', '.join(OBJECTIVES)}")
    if len(set(objs)) != len(objs):
        raise ValueError(f"objectives repeat a name: {', '.join(objs)}")
    return objs


def directions(objectives: Sequence[str]) -> list[str]:
    return [OBJECTIVES[o] for o in check_objectives(objectives)]


def objective_value(result: TrialResult | dict[str, Any], objective: str) -> float | None:
    name = _FIELD[objective]
    value = result.get(name) if isinstance(result, dict) else getattr(result, name)
    return None if value is None else float(value)


def result_attr(key: str, result: TrialResult) -> dict[str, Any]:
    """The compact `result` user attribute of an evaluated trial."""
    out: dict[str, Any] = {"key": key, "cost_s": float(result.cost_s)}
    for name in ("accuracy", "params", "flops", "latency_ms", "error"):
        value = getattr(result, name)
        if value is not None:
            out[name] = value
    if result.curve:
        out["curve"] = [float(v) for v in result.curve]
    if result.extra:
        out["extra"] = result.extra
    return out


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the study stores it, in the words of this package."""

    number: int
    state: TrialState
    values: tuple[float, ...] | None
    arch: str | None
    status: str | None
    result: dict[str, Any]
    duplicate_of: int | None
    params: dict[str, Any]

    @property
    def key(self) -> str | None:
        return self.result.get("key")

    @property
    def evaluated(self) -> bool:
        """A trial that ran its evaluation (not a duplicate, not infeasible, not interrupted)."""
        return self.duplicate_of is None and self.status in COUNTED

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        return cls(
            number=trial.number,
            state=trial.state,
            values=tuple(trial.values) if trial.values is not None else None,
            arch=attrs.get(ATTR_ARCH),
            status=attrs.get(ATTR_STATUS),
            result=attrs.get(ATTR_RESULT) or {},
            duplicate_of=attrs.get(ATTR_DUPLICATE),
            params=dict(trial.params),
        )


def records(study: optuna.Study) -> list[TrialRecord]:
    trials = study.get_trials(deepcopy=False)
    return [TrialRecord.of(t) for t in sorted(trials, key=lambda t: t.number)]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def best_records(study: optuna.Study, recs: list[TrialRecord] | None = None) -> list[TrialRecord]:
    """The best evaluated trial (one objective) or the Pareto front sorted by first objective.

    Duplicates are left out (they repeat an earlier trial's values).
    """
    recs = records(study) if recs is None else recs
    signs = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
    done = [
        r for r in recs if r.state == TrialState.COMPLETE and r.duplicate_of is None and r.values
    ]
    if not done:
        return []
    scored = [(tuple(s * v for s, v in zip(signs, r.values, strict=True)), r) for r in done]  # type: ignore[arg-type]
    if len(signs) == 1:
        return [max(scored, key=lambda p: (p[0][0], -p[1].number))[1]]
    front = [r for s, r in scored if not any(_dominates(o, s) for o, _ in scored)]
    return sorted(front, key=lambda r: (-signs[0] * r.values[0], r.number))  # type: ignore[index]
