"""Everything a report shows, read from a study's storage alone (no data, no model files).

A study made by `normnas search` holds its run config, space spec, versions and command
(`normnas` study attribute), the last run's summary (`last_run`), the final model's test
accuracy and diagnostics (`final_model`, see `report.diagnostics`), and per trial its
result attributes and learning curve (see `search.records`). A study made by the Python
API around `run_search` (e.g. an NB201 table study) lacks the config: the space is then
recognised from the parameter names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.study import StudyDirection

from normnas.report.formats import ACCURACY_IS, Label, objective_label, score_name
from normnas.search import records as rec
from normnas.search.final_diagnostics import FINAL_MODEL_ATTR

__all__ = ["FINAL_MODEL_ATTR", "LAST_RUN_ATTR", "StudyData", "TrialRow", "load"]

LAST_RUN_ATTR = "last_run"  # study attribute written at the end of a search run
# `judges.screening`'s study attribute of a cascade and mark of its screened trials, spelled
# here: importing the judges costs a second (scipy.stats) that a study without a cascade
# need not pay (tests/report/test_cascade.py checks they agree)
CASCADE_ATTR = "cascade"
SCREEN_ATTR = "cascade_screen"


@dataclass
class TrialRow:
    """One trial as the report shows it."""

    number: int
    category: str  # ok, pruned, failed, duplicate, infeasible, running, screened, ...
    values: tuple[float, ...] | None
    arch: str
    params: dict[str, Any]
    accuracy: float | None
    n_params: float | None
    flops: float | None
    latency_ms: float | None
    cost_s: float | None
    # how latency_ms was measured (None: not recorded, as by earlier versions)
    latency_load: float | None
    latency_cores: int | None
    latency_reliable: bool | None
    curve: list[float]
    start_s: float | None  # seconds since the study's first trial started
    end_s: float | None
    duplicate_of: int | None
    error: str


@dataclass
class StudyData:
    name: str
    storage: str
    objectives: list[str]
    maximize: list[bool]
    meta: dict[str, Any]
    attrs: dict[str, Any]
    rows: list[TrialRow]
    front: list[int]  # trial numbers: the best trial, or the Pareto front
    chosen: int | None  # the best trial (Pareto: best first objective), the one retrained
    space: Any  # the SearchSpace, or None when it cannot be rebuilt
    space_name: str
    notes: list[str] = field(default_factory=list)
    # the name of the judge's score the `accuracy` objective holds (proxies, the BN
    # indicator); None when it is an accuracy
    score: str | None = None
    funnel: Any = None  # a cascade study's `report.funnel.Funnel`, else None
    trials: list[Any] = field(default_factory=list)  # the study's FrozenTrials, read once

    def label(self, objective: str) -> Label:
        """How `objective`'s values are named and written (see `formats.objective_label`)."""
        plain = objective_label(None, objective)
        return Label(self.score, False) if self.score and plain.name == "accuracy" else plain

    @property
    def evaluated(self) -> list[TrialRow]:
        """Trials that ran and succeeded (duplicates excluded): the analysed population."""
        return [r for r in self.rows if r.category == "ok" and r.values]

    def row(self, number: int) -> TrialRow | None:
        return next((r for r in self.rows if r.number == number), None)


def load(study: optuna.Study, storage: str) -> StudyData:
    from normnas.search.study import read_trials, study_meta

    meta = study_meta(study)
    # the config's spelling first ("f1:maximize"): metric_names holds the bare names
    objectives = list(meta.get("config", {}).get("objectives") or study.metric_names or [])
    if len(objectives) != len(study.directions):
        objectives = (
            ["accuracy"]
            if len(study.directions) == 1
            else [f"value{i}" for i in range(len(study.directions))]
        )
    maximize = [d == StudyDirection.MAXIMIZE for d in study.directions]
    # one read of the trials for the whole report (Optuna's read of a large SQLite study
    # costs seconds; `read_trials` a tenth of that)
    read = read_trials(study)
    trials = {t.number: t for t in read}
    starts = [t.datetime_start for t in trials.values() if t.datetime_start is not None]
    t0 = min(starts) if starts else None
    records = rec.records(study, read)
    rows = [_row(r, trials[r.number], t0) for r in records]
    front = [r.number for r in rec.best_records(study, records)]
    space, space_name, notes = _space(meta, rows)
    attrs = dict(study.user_attrs)
    funnel = None
    if attrs.get(CASCADE_ATTR) is not None:
        from normnas.report.funnel import funnel as make_funnel

        funnel = make_funnel(attrs[CASCADE_ATTR], trials.values())
    return StudyData(
        name=study.study_name,
        storage=storage,
        objectives=objectives,
        maximize=maximize,
        meta=meta,
        attrs=attrs,
        rows=rows,
        front=front,
        chosen=front[0] if front else None,
        space=space,
        space_name=space_name,
        notes=notes,
        score=_score(meta, records),
        funnel=funnel,
        trials=read,
    )


def _score(meta: dict[str, Any], records: list[rec.TrialRecord]) -> str | None:
    """The judge's score the accuracy objective holds: by the run config's evaluator, else
    (a study made around `run_search`) by what the first result says it holds."""
    evaluator = (meta.get("config") or {}).get("evaluator")
    if evaluator:
        return score_name(evaluator)
    said = next((r.result["extra"][ACCURACY_IS] for r in records
                 if ACCURACY_IS in (r.result.get("extra") or {})), None)  # fmt: skip
    return score_name(accuracy_is=said)


def _category(r: rec.TrialRecord, t: optuna.trial.FrozenTrial) -> str:
    if r.duplicate_of is not None:
        return "duplicate"
    if r.status:
        return r.status
    if t.user_attrs.get(SCREEN_ATTR):  # a cascade's cheap stage judged it: its funnel
        return "screened"
    return r.state.name.lower()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _row(r: rec.TrialRecord, t: optuna.trial.FrozenTrial, t0: Any) -> TrialRow:
    m = r.result
    start = (t.datetime_start - t0).total_seconds() if t0 and t.datetime_start else None
    end = (t.datetime_complete - t0).total_seconds() if t0 and t.datetime_complete else None
    return TrialRow(
        number=r.number,
        category=_category(r, t),
        values=r.values,
        arch=r.arch or "",
        params=dict(r.params),
        accuracy=_num(m.get("accuracy")),
        n_params=_num(m.get("params")),
        flops=_num(m.get("flops")),
        latency_ms=_num(m.get("latency_ms")),
        cost_s=_num(m.get("cost_s")),
        latency_load=_num(m.get("latency_load")),
        latency_cores=_int(m.get("latency_cores")),
        latency_reliable=m["latency_reliable"]
        if isinstance(m.get("latency_reliable"), bool)
        else None,
        curve=[float(v) for v in (m.get("curve") or [])] if r.duplicate_of is None else [],
        start_s=start,
        end_s=end,
        duplicate_of=r.duplicate_of,
        error=str(m.get("error") or ""),
    )


def _space(meta: dict[str, Any], rows: list[TrialRow]) -> tuple[Any, str, list[str]]:
    """The study's search space (joint with its recipe when it had one), its name, notes."""
    from normnas.search.spaces import make_space, space_from_spec

    config = meta.get("config") or {}
    spec = meta.get("space")
    try:
        if config.get("space"):
            from normnas.config import parse_config

            cfg = parse_config(config)
            space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
            return space, cfg.space.name, []
        if spec:
            return space_from_spec(spec), str(spec.get("name")), []
    except Exception as e:  # a study from another version: show what the storage has
        return None, str((spec or {}).get("name", "?")), [f"space not rebuilt: {e}"]
    from normnas.spaces.nb201 import PARAM_NAMES, NB201Space

    names = {k for r in rows for k in r.params}
    if names and names <= set(PARAM_NAMES):
        return NB201Space(), "nb201", []
    return None, "?", ["the study records no normnas config; the space is unknown"]
