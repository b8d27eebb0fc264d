"""How a trial is recorded in the study (user attributes) and read back.

Per evaluated trial the runner writes flat, numeric or short-string user attributes, so
optuna-dashboard shows them whole (it cuts an attribute at 1,024 characters): `arch` (the
space's string), `key` (string of the canonical arch), `status` (a TrialResult status, or
`interrupted`), the metrics `accuracy`, `params`, `flops`, `macs`, `latency_ms`, `cost_s`,
with a measured latency also `latency_load` (the 1-minute load average then),
`latency_cores` and `latency_reliable` (see `normnas.train.cost.latency_reliable`),
`error` (one line, at most 300 characters) and each scalar of the evaluator's `extra` as
`x.<name>`. The learning curve (valid accuracy per epoch) is stored as the trial's
intermediate values, which the dashboard plots. A repeat of an architecture already
evaluated gets only `duplicate_of` (the trial number whose result it reuses). Every
evaluated trial also gets `worker` ("host:pid:start") before it runs, so a restart can
tell a dead worker's RUNNING trial from a live one. Studies written by earlier versions
(one JSON `result` attribute) are still read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from normnas.search.result import TrialResult

ATTR_RESULT = "result"  # earlier versions: the whole result as one dict
ATTR_STATUS = "status"
EXTRA_PREFIX = "x."
METRIC_ATTRS = ("accuracy", "params", "flops", "macs", "latency_ms", "cost_s")
# how a latency figure was measured: written beside `latency_ms` when the figure carries it
LATENCY_ATTRS = ("latency_load", "latency_cores", "latency_reliable")
MAX_ERROR_CHARS = 300
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


# a metric of your own evaluate function, with its direction: "f1:maximize", "loss:min"
_CUSTOM = re.compile(r"(?P<name>[A-Za-z_][\w.-]*):(?P<dir>maximize|minimize|max|min)")
OBJECTIVE_HELP = (
    f"must be one of {', '.join(repr(o) for o in OBJECTIVES)}, or NAME:maximize / "
    "NAME:minimize for a metric your evaluate function returns"
)


def parse_objective(objective: str) -> tuple[str, str]:
    """(metric name, "maximize" | "minimize") of an objective; ValueError if it is none.

    Built-in objectives are their names; a metric of a custom evaluate function is
    `NAME:maximize` or `NAME:minimize` (`max`/`min` for short).
    """
    if objective in OBJECTIVES:
        return objective, OBJECTIVES[objective]
    match = _CUSTOM.fullmatch(objective) if isinstance(objective, str) else None
    if match is None:
        raise ValueError(OBJECTIVE_HELP)
    name, direction = match["name"], match["dir"]
    direction = {"max": "maximize", "min": "minimize"}.get(direction, direction)
    if name in OBJECTIVES and OBJECTIVES[name] != direction:
        raise ValueError(f"{name!r} is always {OBJECTIVES[name]}d; write it as {name!r}")
    return name, direction


def normalize_objective(objective: str) -> str:
    """The one spelling of an objective: built-ins bare, custom ones `NAME:maximize|minimize`."""
    name, direction = parse_objective(objective)
    return name if name in OBJECTIVES else f"{name}:{direction}"


def is_custom(objective: str) -> bool:
    """Is this a metric of a custom evaluate function (not one every evaluator gives)?"""
    return parse_objective(objective)[0] not in OBJECTIVES


def check_objectives(objectives: Iterable[str]) -> tuple[str, ...]:
    objs = tuple(objectives)
    if not objs:
        raise ValueError("at least one objective is needed; valid: " + ", ".join(OBJECTIVES))
    for o in objs:
        try:
            parse_objective(o)
        except ValueError as e:
            why = (
                f"valid: {', '.join(OBJECTIVES)}, or NAME:maximize / NAME:minimize for a "
                "metric your evaluate function returns"
                if str(e) == OBJECTIVE_HELP
                else str(e)
            )
            raise ValueError(f"unknown objective {o!r}; {why}") from None
    names = [parse_objective(o)[0] for o in objs]
    if len(set(names)) != len(names):
        raise ValueError(f"objectives repeat a name: {', '.join(objs)}")
    return objs


def directions(objectives: Sequence[str]) -> list[str]:
    return [parse_objective(o)[1] for o in check_objectives(objectives)]


def objective_value(result: TrialResult | dict[str, Any], objective: str) -> float | None:
    """The objective's value in `result`: a field for built-ins, `extra[NAME]` for custom."""
    name = parse_objective(objective)[0]
    if name in _FIELD:
        field = _FIELD[name]
        value = result.get(field) if isinstance(result, dict) else getattr(result, field)
    else:
        extra = (result.get("extra") if isinstance(result, dict) else result.extra) or {}
        value = extra.get(name)
    return None if value is None else float(value)


def result_attrs(arch: str, key: str, status: str, result: TrialResult) -> dict[str, Any]:
    """The flat user attributes of an evaluated trial (the curve goes elsewhere)."""
    out: dict[str, Any] = {"arch": arch, "key": key, ATTR_STATUS: status}
    for name in METRIC_ATTRS:
        value = getattr(result, name, None)
        if value is not None:
            out[name] = float(value) if name in ("accuracy", "latency_ms", "cost_s") else value
    out.update(latency_attrs(result.latency_ms))
    if result.error:
        out["error"] = " ".join(str(result.error).split())[:MAX_ERROR_CHARS]
    for name, value in (result.extra or {}).items():
        if isinstance(value, (bool, int, float, str)) and not (
            isinstance(value, str) and len(value) > MAX_ERROR_CHARS
        ):
            out[EXTRA_PREFIX + name] = value
    return out


def latency_attrs(latency_ms: Any) -> dict[str, Any]:
    """`latency_load`, `latency_cores`, `latency_reliable` of a figure that carries them
    (`normnas.train.cost.LatencyMs`, what `network_costs` measures); {} for a plain number."""
    reliable = getattr(latency_ms, "reliable", None)
    if reliable is None:
        return {}
    out: dict[str, Any] = {"latency_reliable": bool(reliable)}
    load = getattr(latency_ms, "load", None)
    if load is not None:
        out["latency_load"] = round(float(load), 2)
    cores = getattr(latency_ms, "cores", None)
    if cores is not None:
        out["latency_cores"] = int(cores)
    return out


def write_result(
    study: optuna.Study, trial_id: int, attrs: dict[str, Any], curve: Sequence[float] = ()
) -> None:
    """Write a trial's attributes and its curve (as intermediate values) to the storage.

    `status` is written last: a reader that sees it sees the whole result. On an RDB
    storage (SQLite, PostgreSQL) everything goes in one transaction: each write is a
    transaction of its own otherwise, which made SQLite searches 1.5x slower per trial.
    """
    storage = study._storage
    if _write_in_one_transaction(storage, trial_id, attrs, curve):
        return
    for step, value in enumerate(curve, start=1):
        storage.set_trial_intermediate_value(trial_id, step, float(value))
    for name, value in attrs.items():
        if name != ATTR_STATUS:
            storage.set_trial_user_attr(trial_id, name, value)
    storage.set_trial_user_attr(trial_id, ATTR_STATUS, attrs[ATTR_STATUS])


def _write_in_one_transaction(
    storage: Any, trial_id: int, attrs: dict[str, Any], curve: Sequence[float]
) -> bool:
    """Write through an RDBStorage's own per-row helpers inside one session; False when the
    storage is not one (or its private helpers moved in another Optuna version)."""
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return False
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        set_attr = backend._set_trial_attr_without_commit
        set_value = backend._set_trial_intermediate_value_without_commit
    except (ImportError, AttributeError):
        return False
    ordered = [(k, v) for k, v in attrs.items() if k != ATTR_STATUS]
    ordered.append((ATTR_STATUS, attrs[ATTR_STATUS]))
    with _create_scoped_session(backend.scoped_session, True) as session:
        for step, value in enumerate(curve, start=1):
            set_value(session, trial_id, step, float(value))
        for name, value in ordered:
            set_attr(session, models.TrialUserAttributeModel, trial_id, name, value)
    return True


def mark_interrupted(study: optuna.Study, trial_id: int) -> None:
    study._storage.set_trial_user_attr(trial_id, ATTR_STATUS, "interrupted")


def result_of(trial: FrozenTrial) -> dict[str, Any] | None:
    """The result dict of a trial (flat attributes or an older `result` attribute), or None."""
    attrs = trial.user_attrs
    legacy = attrs.get(ATTR_RESULT)
    if isinstance(legacy, dict):
        return legacy
    status = attrs.get(ATTR_STATUS)
    if status is None:
        return None
    out: dict[str, Any] = {"status": status, "extra": {}}
    for name in ("arch", "key", "error", *METRIC_ATTRS, *LATENCY_ATTRS):
        if name in attrs:
            out[name] = attrs[name]
    for name, value in attrs.items():
        if name.startswith(EXTRA_PREFIX):
            out["extra"][name[len(EXTRA_PREFIX) :]] = value
    if trial.intermediate_values:
        out["curve"] = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
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
    def of(cls, trial: FrozenTrial, original: TrialRecord | None = None) -> TrialRecord:
        """A record of `trial`; a duplicate takes arch, status and result from `original`."""
        attrs = trial.user_attrs
        result = result_of(trial) or {}
        dup = attrs.get(ATTR_DUPLICATE)
        if dup is not None and original is not None:
            result = original.result
        elif trial.state == TrialState.FAIL and ATTR_STATUS not in result:
            # failed from outside before its result was written: by Optuna's heartbeat
            # (its worker died; the retry is queued) or by an older version's recovery
            result = {**result, "status": "interrupted"}
        return cls(
            number=trial.number,
            state=trial.state,
            values=tuple(trial.values) if trial.values is not None else None,
            arch=result.get("arch"),
            status=result.get("status"),
            result=result,
            duplicate_of=dup,
            params=dict(trial.params),
        )


def records(study: optuna.Study, trials: Iterable[FrozenTrial] | None = None) -> list[TrialRecord]:
    """Every trial of the study as a TrialRecord, in trial-number order (`trials`: the
    study's trials when the caller has read them already, e.g. with `study.read_trials`)."""
    out: dict[int, TrialRecord] = {}
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    for t in sorted(trials, key=lambda t: t.number):
        dup = t.user_attrs.get(ATTR_DUPLICATE)
        out[t.number] = TrialRecord.of(t, out.get(dup) if dup is not None else None)
    return list(out.values())


def _dominated(points: list[tuple[float, ...]], block: int = 256) -> list[bool]:
    """Whether each point (larger is better in every coordinate) is dominated by another
    (at least as good in every coordinate, better in one), in blocks of NumPy comparisons:
    pair by pair in Python, a 1,500-trial two-objective study took seconds."""
    import numpy as np

    values = np.asarray(points, dtype=float)
    out = np.zeros(len(values), dtype=bool)
    for start in range(0, len(values), block):
        mine = values[start : start + block, None, :]
        at_least = (values[None, :, :] >= mine).all(axis=2)
        better = (values[None, :, :] > mine).any(axis=2)
        out[start : start + block] = (at_least & better).any(axis=1)
    return out.tolist()


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
    beaten = _dominated([s for s, _ in scored])
    front = [r for (_, r), out in zip(scored, beaten, strict=True) if not out]
    return sorted(front, key=lambda r: (-signs[0] * r.values[0], r.number))  # type: ignore[index]
