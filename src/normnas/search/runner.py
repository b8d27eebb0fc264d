"""The one search loop: ask → suggest → (dedup, constraints) → evaluate → tell, under a budget.

Budget semantics (documented choices):
- `trials` counts *evaluated* trials of the study — statuses ok, failed, diverged, pruned,
  timeout — including those already in the study when the run starts (so a resumed run
  reaches the original total). Duplicates, infeasible and interrupted trials do not count.
- `cost_s` follows NAS-Bench-201's own REA/random-search code: a new query is made while
  the spent cost is below the budget, and the query that crosses the budget still counts.
  Spent cost includes the trials already in the study.
- `wall_s` is this run's real time. Each trial gets the time left (less `reserve_s()`, the
  time kept for what follows the search, e.g. the final retrain) as its limit, when its
  evaluator accepts a `time_limit_s` argument (training does): a trial cut short is
  recorded as `timeout` with the epochs it reached. No trial starts when the time left is
  under the median duration of this run's finished trials (it would likely be cut).
- The run also stops when the sampler flags the space exhausted, or — with dedup, for a
  space that counts its architectures (`space_size`) — once every one of them has a
  result (`stopped_by="exhausted"`, `extra["space_size"]`: the count), or after
  `max(10 × trials budget, 1000)` consecutive proposals that brought nothing new
  (duplicates and infeasible architectures; at most 10 × the space's size when it is
  known, so a small space does not fill the study with repeats), or — while no feasible
  architecture has been found at all — after `max_infeasible` infeasible proposals
  (`stopped_by="infeasible"`; the summary says which constraint excluded them).
- A storage fault (a full disk, a lost server) ends the run with one StorageError naming
  the file or URL; the trial it cut is re-run by the next run, as after a kill.

Infeasible architectures (a constraint violated, checked through `evaluator.cost_metrics`
before evaluating) are told as FAIL with status `infeasible` and cost nothing: samplers
ignore them, as they ignore failed trials. Failed and diverged evaluations are told as FAIL
with their status, pruned ones as PRUNED; the search goes on.
"""

from __future__ import annotations

import functools
import inspect
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import optuna
from optuna.pruners import NopPruner
from optuna.trial import FrozenTrial, TrialState

from normnas.search import records as rec
from normnas.search.budget import Budget  # re-exported: normnas.search.runner.Budget
from normnas.search.events import ProgressDisplay, TrialEvent
from normnas.search.result import Evaluator, ReportFn, TrialResult
from normnas.search.study import (
    claim,
    fail_stale,
    owner_alive,
    release,
    storage_errors,
    storage_name,
)
from normnas.spaces.base import Arch, SearchSpace, space_size

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Constraints:
    """Limits checked before an architecture is evaluated."""

    max_params: float | None = None
    max_flops: float | None = None
    max_latency_ms: float | None = None

    def metric_names(self) -> tuple[str, ...]:
        pairs = (
            ("params", self.max_params),
            ("flops", self.max_flops),
            ("latency_ms", self.max_latency_ms),
        )
        return tuple(n for n, limit in pairs if limit is not None)

    def violation(self, metrics: dict[str, float]) -> str | None:
        """One line naming the first violated limit, or None when feasible."""
        for name in self.metric_names():
            limit = getattr(self, f"max_{name}")
            value = metrics.get(name)
            if value is not None and value > limit:
                return f"{name} {value:g} > max_{name} {limit:g}"
        return None


@dataclass
class SearchSummary:
    study_name: str
    objectives: tuple[str, ...]
    best_trials: list[rec.TrialRecord]  # best (one objective) or Pareto front
    n_evaluated: int  # evaluated by this run
    n_duplicates: int
    n_infeasible: int
    n_failed: int  # failed, diverged or timeout in this run
    n_pruned: int
    n_total: int  # evaluated trials in the study, counting toward the budget
    spent_cost_s: float  # study-wide when counting existing trials
    wall_s: float
    stopped_by: str
    extra: dict[str, Any] = field(default_factory=dict)
    # why infeasible architectures were excluded: "params > max_params 1" -> count
    infeasible_reasons: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None  # of this run's failed/diverged trials
    status_counts: dict[str, int] = field(default_factory=dict)  # this run, by status

    @property
    def best(self) -> rec.TrialRecord | None:
        return self.best_trials[0] if self.best_trials else None


@dataclass
class _Entry:
    number: int
    state: TrialState
    values: tuple[float, ...] | None
    status: str


class _Ledger:
    """What the runner knows of the study: evaluated keys and budget counters.

    Built by one scan at start; afterwards kept in process, and refreshed incrementally only
    when trials created by someone else (another worker, an enqueue) appear.
    """

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.seen: set[int] = set()
        self.n_counted = 0
        self.spent = 0.0

    def absorb(self, t: FrozenTrial) -> None:
        if t.number in self.seen or not t.state.is_finished():
            return
        self.seen.add(t.number)
        result = rec.result_of(t)
        if result is None or t.user_attrs.get(rec.ATTR_DUPLICATE) is not None:
            return
        status = result.get("status", "ok")
        if status in rec.COUNTED:
            self.n_counted += 1
            self.spent += float(result.get("cost_s", 0.0))
        key = result.get("key")
        if key is not None and key not in self.entries and status != "interrupted":
            values = tuple(t.values) if t.values is not None else None
            self.entries[key] = _Entry(t.number, t.state, values, status)

    def scan(self, study: optuna.Study) -> list[FrozenTrial]:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        for t in trials:
            self.absorb(t)
        return trials


def _report_fn(trial: optuna.Trial) -> ReportFn:
    def report(step: int, value: float) -> bool:
        trial.report(float(value), int(step))
        return trial.should_prune()

    return report


def accepts_time_limit(evaluator: Evaluator) -> bool:
    try:
        return "time_limit_s" in inspect.signature(evaluator.evaluate).parameters
    except (TypeError, ValueError):
        return False


def _safe_evaluate(
    evaluator: Evaluator, arch: Arch, report: ReportFn | None, time_limit_s: float | None = None
) -> TrialResult:
    start = time.perf_counter()
    try:
        if time_limit_s is not None:
            return evaluator.evaluate(arch, None, report, time_limit_s=time_limit_s)  # type: ignore[call-arg]
        return evaluator.evaluate(arch, None, report)
    except Exception as exc:  # an evaluator bug must not end the search
        line = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return TrialResult(status="failed", error=line, cost_s=time.perf_counter() - start)


def _check_study(study: optuna.Study, objectives: Sequence[str]) -> tuple[str, ...]:
    objs = rec.check_objectives(objectives)
    want = [optuna.study.StudyDirection[d.upper()] for d in rec.directions(objs)]
    if list(study.directions) != want:
        raise ValueError(
            f"study {study.study_name!r} directions {[d.name.lower() for d in study.directions]}"
            f" do not match objectives {list(objs)}"
        )
    return objs


def _storage_faults(fn: F) -> F:
    """`fn(study, ...)` with the storage's own faults (a full disk, a lost server) raised as
    one StorageError naming its file or URL, instead of Optuna's generic commit error.

    Nothing is lost: a failed write is rolled back, the trial it belonged to is left
    RUNNING (or marked interrupted when the storage still takes that write) and is re-run
    by the next run of the study, as after a kill.
    """

    @functools.wraps(fn)
    def wrapper(study: optuna.Study, *args: Any, **kwargs: Any) -> Any:
        with storage_errors(storage_name(study._storage), files=False):
            return fn(study, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@_storage_faults
def run_search(
    study: optuna.Study,
    space: SearchSpace,
    evaluator: Evaluator,
    budget: Budget,
    objectives: Sequence[str] = ("accuracy",),
    constraints: Constraints | None = None,
    dedup: bool = True,
    pruner_fidelity: bool = False,
    progress: ProgressDisplay | None = None,
    *,
    count_existing: bool = True,
    record_worker: bool = True,
    callback: Callable[[TrialEvent], None] | None = None,
    wait_poll_s: float = 0.2,
    reserve_s: Callable[[], float] | None = None,
    max_infeasible: int = 200,
) -> SearchSummary:
    """Run the search loop on `study` until the first budget limit; see the module doc.

    `pruner_fidelity=True` hands the evaluator a report function wired to `trial.report` /
    `should_prune` (it is on automatically when the study has a pruner other than
    NopPruner and one objective). `count_existing=False` makes the budget count only this
    run's trials (used by parallel workers that each take a share). `callback` receives a
    `TrialEvent` after each trial, and so does `progress` (a display such as
    `normnas.report.progress.make_progress` makes: a bar or one line per trial), which is
    closed when the loop ends; the loop itself draws nothing.
    `record_worker` writes each trial's owner (`worker`, `heartbeat`: see `study.claim`) as
    soon as it is asked for, so that a restart or a concurrent run can tell a dead run's
    RUNNING trial from a live one.
    `reserve_s()` is the wall time to keep free for after the search (see the module doc);
    `max_infeasible` bounds the proposals made while nothing feasible has been found.
    """
    if progress is not None:  # a display is one more listener, closed however the loop ends
        listeners = [progress.update] + ([callback] if callback is not None else [])

        def notify(event: TrialEvent) -> None:
            for listener in listeners:
                listener(event)

        try:
            return run_search(
                study, space, evaluator, budget, objectives, constraints, dedup,
                pruner_fidelity, None, count_existing=count_existing,
                record_worker=record_worker, callback=notify,
                wait_poll_s=wait_poll_s, reserve_s=reserve_s, max_infeasible=max_infeasible,
            )  # fmt: skip
        finally:
            progress.close()
    objs = _check_study(study, objectives)
    t0 = time.perf_counter()
    ledger = _Ledger()
    expected_next = len(ledger.scan(study))
    use_report = len(objs) == 1 and (pruner_fidelity or not isinstance(study.pruner, NopPruner))
    check = constraints if constraints is not None and constraints.metric_names() else None
    cost_metrics = getattr(evaluator, "cost_metrics", None)
    if check is not None and cost_metrics is None:
        raise ValueError("constraints need an evaluator with a cost_metrics(arch, names) method")
    counts = {"evaluated": 0, "duplicates": 0, "infeasible": 0, "failed": 0, "pruned": 0}
    by_status: dict[str, int] = {}
    reasons: dict[str, int] = {}
    first_error: str | None = None
    durations: list[float] = []  # of this run's evaluated trials, for the time rule
    timed = budget.wall_s is not None and accepts_time_limit(evaluator)
    streak = 0  # proposals in a row that brought no new feasible architecture
    shared = False
    size = space_size(space) if dedup else None
    max_streak = max(10 * budget.trials, 1000) if budget.trials else 1000
    if size is not None:
        # every repeat is a trial row: in a small space a run of them means (nearly) all is
        # seen, and a random proposal misses the last new one 10 x size times in e^-10
        max_streak = min(max_streak, max(10, 10 * size))
    in_space: dict[str, bool] = {}  # result key -> is it an architecture of this space?
    stopped_by = ""

    own = {"counted": 0, "spent": 0.0}  # this run's own evaluations (workers' shares)

    def counted() -> int:
        return ledger.n_counted if count_existing else own["counted"]

    def spent() -> float:
        return ledger.spent if count_existing else own["spent"]

    def time_left() -> float | None:
        if budget.wall_s is None:
            return None
        reserve = reserve_s() if reserve_s is not None else 0.0
        return budget.wall_s - (time.perf_counter() - t0) - reserve

    while True:
        if shared:  # other runs count toward a study-wide budget too
            ledger.scan(study)
        stopped_by = _stop_reason(study, budget, counted(), spent(), time.perf_counter() - t0)
        left = time_left()
        if not stopped_by and left is not None:
            typical = statistics.median(durations) if durations else 0.0
            if left <= 0 or left < typical:  # it could not finish: don't start it
                stopped_by = "wall"
        if not stopped_by and streak >= max_streak:
            stopped_by = "duplicates"
        if not stopped_by and counts["infeasible"] >= max_infeasible and not _any_feasible(ledger):
            stopped_by = "infeasible"
        if not stopped_by and size is not None and _all_seen(ledger, space, size, in_space):
            stopped_by = "exhausted"  # every architecture has a recorded result
        if stopped_by:
            break
        # server storages: a dead worker's trial (its heartbeat stopped) is re-queued
        # now, so that this ask (which takes queued trials first) runs it again
        fail_stale(study)
        trial = study.ask()
        if trial.number != expected_next:
            shared = True  # trials created elsewhere: another worker or an enqueue
        expected_next = trial.number + 1
        try:
            if record_worker:
                claim(study, trial)  # first: a run beside this one sees it is not dead
            arch = space.suggest(trial)
            key = space.to_str(space.canonical(arch))
            entry = ledger.entries.get(key) if dedup else None
            if entry is None and dedup and shared:
                entry = _twin(study, space, ledger, key, trial, wait_poll_s)
            if entry is not None:
                _tell_duplicate(study, trial, entry)
                counts["duplicates"] += 1
                streak += 1
                status, dup, values = entry.status, entry.number, entry.values
            else:
                result = None
                if check is not None:
                    names = check.metric_names()
                    if "flops" in names:
                        names = (*names, "macs")  # one counting pass gives both
                    metrics = cost_metrics(arch, names)  # type: ignore[misc]
                    why = check.violation(metrics)
                    if why is not None:
                        result = TrialResult(
                            status="infeasible",
                            error=why,
                            params=metrics.get("params"),
                            flops=metrics.get("flops"),
                            macs=metrics.get("macs"),
                            latency_ms=metrics.get("latency_ms"),
                        )
                        reason = why.split(" ", 1)[0]
                        reasons[reason] = reasons.get(reason, 0) + 1
                if result is None:
                    report = _report_fn(trial) if use_report else None
                    limit = time_left() if timed else None
                    result = _safe_evaluate(
                        evaluator, arch, report, None if limit is None else max(limit, 0.1)
                    )
                    durations.append(float(result.cost_s))
                    streak = 0
                    if check is not None:  # what the constraint check measured is recorded
                        for name in ("params", "flops", "macs", "latency_ms"):
                            if getattr(result, name) is None and metrics.get(name) is not None:
                                setattr(result, name, metrics[name])
                status, dup, values = _record(
                    study, trial, space.to_str(arch), key, result, objs, ledger, shared
                )
                if result.status in rec.COUNTED:
                    own["spent"] += float(result.cost_s)
                    own["counted"] += dup is None
                if dup is not None:
                    counts["duplicates"] += 1
                elif status == "infeasible":
                    counts["infeasible"] += 1
                    streak += 1
                else:
                    counts["evaluated"] += 1
                    if status == "pruned":
                        counts["pruned"] += 1
                    elif status != "ok":
                        counts["failed"] += 1
                        if first_error is None and result.error:
                            first_error = f"#{trial.number} {status}: {result.error}"
                if dup is None:
                    by_status[status] = by_status.get(status, 0) + 1
        except optuna.exceptions.UpdateFinishedTrialError:
            # another run took this trial for dead (its claim came late, e.g. a slow
            # `ask` on a loaded machine) and re-queued it: the queued copy runs it, and
            # this run's result is dropped rather than told twice
            release(trial)
            sys.stderr.write(
                f"note: trial #{trial.number} was re-queued by another run while this "
                "one held it; its queued copy will run it\n"
            )
            continue
        except BaseException:
            _interrupt(study, trial)
            raise
        event = TrialEvent(
            trial.number,
            status,
            dup,
            values,
            counted(),
            spent(),
            time.perf_counter() - t0,
            budget,
            arch=space.to_str(arch),
        )
        if callback is not None:
            callback(event)
    return SearchSummary(
        study_name=study.study_name,
        objectives=objs,
        best_trials=rec.best_records(study),
        n_evaluated=counts["evaluated"],
        n_duplicates=counts["duplicates"],
        n_infeasible=counts["infeasible"],
        n_failed=counts["failed"],
        n_pruned=counts["pruned"],
        n_total=counted(),
        spent_cost_s=spent(),
        wall_s=time.perf_counter() - t0,
        stopped_by=stopped_by,
        infeasible_reasons=reasons,
        first_error=first_error,
        status_counts=by_status,
        extra={"space_size": size} if size is not None else {},
    )


def _all_seen(ledger: _Ledger, space: SearchSpace, size: int, in_space: dict[str, bool]) -> bool:
    """Has every one of the space's `size` architectures a recorded result?

    Keys of another space (a study rerun with `--force` on a changed space) do not count;
    `in_space` caches the answer per key, so each key is parsed once.
    """
    if len(ledger.entries) < size:  # the common case, at no cost
        return False
    for key in ledger.entries:
        if key not in in_space:
            try:
                in_space[key] = space.to_str(space.canonical(space.from_str(key))) == key
            except Exception:  # not an architecture of this space
                in_space[key] = False
    return sum(in_space[key] for key in ledger.entries) >= size


def _any_feasible(ledger: _Ledger) -> bool:
    """Has the study a recorded architecture that met the constraints?"""
    return any(e.status != "infeasible" for e in ledger.entries.values())


def _stop_reason(
    study: optuna.Study, budget: Budget, n_counted: int, spent: float, elapsed: float
) -> str:
    if budget.trials is not None and n_counted >= budget.trials:
        return "trials"
    if budget.cost_s is not None and spent >= budget.cost_s:
        return "cost"
    if budget.wall_s is not None and elapsed >= budget.wall_s:
        return "wall"
    exhausted_for = getattr(study.sampler, "exhausted_for", None)  # per study: samplers are reused
    if exhausted_for(study) if exhausted_for else getattr(study.sampler, "exhausted", False):
        # a sampler that ran out of its own candidates (a cascade's screens) names why
        return str(getattr(study.sampler, "stop_reason", "exhausted"))
    return ""


def _tell_duplicate(study: optuna.Study, trial: optuna.Trial, entry: _Entry) -> None:
    trial.set_user_attr(rec.ATTR_DUPLICATE, entry.number)
    if entry.state == TrialState.COMPLETE:
        study.tell(trial, entry.values)
    else:
        study.tell(trial, state=entry.state)


def _record(
    study: optuna.Study,
    trial: optuna.Trial,
    arch: str,
    key: str,
    result: TrialResult,
    objs: tuple[str, ...],
    ledger: _Ledger,
    shared: bool,
) -> tuple[str, int | None, tuple[float, ...] | None]:
    """Write the trial's attributes and tell it; returns (status, duplicate_of, values)."""
    status = result.status
    values: tuple[float, ...] | None = None
    if status == "ok":
        vals = [rec.objective_value(result, o) for o in objs]
        if any(v is None for v in vals):
            missing = [o for o, v in zip(objs, vals, strict=True) if v is None]
            status, result.error = "failed", f"evaluator returned no {', '.join(missing)}"
        else:
            values = tuple(vals)  # type: ignore[arg-type]
    if shared:
        # another worker may have finished the same architecture while this one ran
        ledger.scan(study)
        twin = ledger.entries.get(key)
        if twin is not None:
            ledger.spent += float(result.cost_s) if status in rec.COUNTED else 0.0
            _tell_duplicate(study, trial, twin)
            return twin.status, twin.number, twin.values
    rec.write_result(
        study, trial._trial_id, rec.result_attrs(arch, key, status, result), result.curve
    )
    if status == "ok":
        state = TrialState.COMPLETE
        study.tell(trial, values)
    elif status == "pruned":
        state = TrialState.PRUNED
        study.tell(trial, state=state)
    else:
        state = TrialState.FAIL
        study.tell(trial, state=state)
    ledger.seen.add(trial.number)
    ledger.entries.setdefault(key, _Entry(trial.number, state, values, status))
    if status in rec.COUNTED:
        ledger.n_counted += 1
        ledger.spent += float(result.cost_s)
    return status, None, values


def _twin(
    study: optuna.Study,
    space: SearchSpace,
    ledger: _Ledger,
    key: str,
    trial: optuna.Trial,
    poll_s: float,
) -> _Entry | None:
    """In a shared study: the finished twin of `key`, waiting for a running lower-numbered one.

    The lower trial number evaluates and the higher one waits, so two workers never wait on
    each other. Races that slip through are caught after evaluation (see `_record`).
    """
    trials = ledger.scan(study)
    if key in ledger.entries:
        return ledger.entries[key]
    for t in trials:
        if t.state != TrialState.RUNNING or t.number >= trial.number or not t.params:
            continue
        try:
            other = space.to_str(space.canonical(space.from_params(t.params)))
        except Exception:
            continue
        if other != key:
            continue
        while True:
            ft = study._storage.get_trial(t._trial_id)
            if not ft.state.is_finished() and owner_alive(ft) is False:
                return None  # its owner died: evaluate it here
            if ft.state.is_finished():
                ledger.absorb(ft)
                return ledger.entries.get(key)  # None if it was interrupted: evaluate here
            time.sleep(poll_s)
    return None


def _interrupt(study: optuna.Study, trial: optuna.Trial) -> None:
    """Mark a trial cut short in this process as failed/interrupted and queue its retry."""
    release(trial)  # no longer running here, whatever happens below
    try:
        stored = study._storage.get_trial(trial._trial_id)
        if stored.state.is_finished():
            return
        trial.set_user_attr(rec.ATTR_RESULT, {"status": "interrupted"})
        study.tell(trial, state=TrialState.FAIL)
        # the stored params: an interrupt inside `suggest` may leave the trial's cache short
        params = stored.params
        if params:
            study.enqueue_trial(params, user_attrs={rec.ATTR_RETRY: trial.number})
    except Exception:  # the storage itself may be what failed; never mask the original error
        pass
