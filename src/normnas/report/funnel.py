"""The funnel of a cascade study (`--cascade`, see `normnas.judges.cascade`): what each stage
judged and spent, and how well each stage's order agreed with the next stage's.

Read from the study alone: the `cascade` study attribute (the spec, and per cheap stage its
judge, candidates judged and seconds) and the trials. A cheap stage's candidates are its
screened trials (`cascade_screen`, `cascade_stage` = the stage's index, scores `x.NAME`);
the last stage's are the evaluated trials with `cascade_stage` = the last index.

A stage's score of a candidate is its own judge's vote: the mean of the ranks in [0, 1]
(over every candidate that stage judged) of the judge's scores, i.e. the proxies' `x.*`
values for a proxy stage, the single `x.bn_indicator` / `x.supernet` otherwise; the last
stage's score is the trial's first objective value. Consecutive stages are compared by
Kendall's tau on the candidates both judged (joined on `key`). The predicted-vs-measured
points are the last stage's trials: the vote of every cheap score, ranked over the
candidates the last cheap stage passed on (the order the cascade promoted by before its
combiner could predict), against the measured value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from normnas.judges.cascade import JUDGES, SCORE_PREFIX, STAGE_ATTR, parse_cascade
from normnas.judges.screening import SCREEN_ATTR
from normnas.search import records as rec

# the scores a judge other than the proxies records, by judge: its name with "_" for "-"
# (see `judges.screening.screen_judge`); every other `x.*` of a screened trial is a proxy's
JUDGE_SCORE = {j: j.replace("-", "_") for j in JUDGES if j not in ("proxy", "train")}


@dataclass
class StageRow:
    """One stage of the funnel as the report's table shows it."""

    judge: str
    judged: int  # candidates it judged (the last stage: trials evaluated)
    seconds: float  # what judging them took
    tau: float | None = None  # Kendall tau against the stage before (None: first, or < 2 pairs)
    pairs: int = 0  # candidates the stage and the one before both judged


@dataclass
class Point:
    """A last-stage trial: the cheap stages' vote for it against its measured value."""

    number: int
    vote: float  # rank in [0, 1] among the candidates the last cheap stage passed on
    value: float
    arch: str


@dataclass
class Funnel:
    spec: str
    stages: list[StageRow]
    cut: bool  # a cheap stage was cut short by the time budget
    points: list[Point] = field(default_factory=list)
    tau: float | None = None  # Kendall tau of the points (vote against measured value)


def kendall(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Kendall's tau-b (scipy's), or None when it is undefined (< 2 points, a constant)."""
    from scipy.stats import kendalltau

    if len(xs) < 2:
        return None
    tau = float(kendalltau(xs, ys)[0])
    return tau if math.isfinite(tau) else None


def vote(scores: Mapping[str, Mapping[str, float]], names: Iterable[str]) -> dict[str, float]:
    """Each key's mean rank in [0, 1] of its `names` scores over all of `scores`' keys (a
    missing score ranks lowest), as the cascade ranks its candidates."""
    import numpy as np

    from normnas.judges.combiner import ranks01

    keys = list(scores)
    names = sorted(names)
    if not keys or not names:
        return {}
    ranks = [ranks01([scores[k].get(n, -math.inf) for k in keys]) for n in names]
    return dict(zip(keys, np.mean(ranks, axis=0).tolist(), strict=True))


def _scores(t: FrozenTrial) -> dict[str, float]:
    return {
        k[len(SCORE_PREFIX) :]: float(v)
        for k, v in t.user_attrs.items()
        if k.startswith(SCORE_PREFIX) and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _own(judge: str, names: Iterable[str]) -> set[str]:
    """The names among `names` that a stage of `judge` scored itself."""
    if judge in JUDGE_SCORE:
        return {JUDGE_SCORE[judge]} & set(names)
    return set(names) - set(JUDGE_SCORE.values())  # a proxy stage: every proxy's score


def funnel(attr: Any, trials: Iterable[FrozenTrial]) -> Funnel | None:
    """The funnel of a study whose `cascade` attribute is `attr` (None when it is not one)."""
    if not isinstance(attr, dict) or not attr.get("spec"):
        return None
    try:
        stages = parse_cascade(str(attr["spec"]))
    except Exception:  # a spec of another version: nothing to show rather than a failure
        return None
    last = len(stages) - 1
    cheap: list[dict[str, dict[str, float]]] = [{} for _ in stages[:-1]]  # key -> scores
    measured: dict[str, tuple[float, int, str]] = {}  # key -> (value, trial number, arch)
    last_judged, last_seconds = 0, 0.0
    for t in trials:
        attrs = t.user_attrs
        stage = attrs.get(STAGE_ATTR)
        if not isinstance(stage, int):
            continue
        if attrs.get(SCREEN_ATTR):
            if t.state == TrialState.PRUNED and 0 <= stage < last and "key" in attrs:
                cheap[stage][str(attrs["key"])] = _scores(t)
            continue
        status = attrs.get(rec.ATTR_STATUS)
        if stage != last or status not in rec.COUNTED:
            continue
        last_judged += 1
        cost = attrs.get("cost_s")
        last_seconds += float(cost) if isinstance(cost, (int, float)) else 0.0
        if status == "ok" and t.values and "key" in attrs:
            measured[str(attrs["key"])] = (float(t.values[0]), t.number, str(attrs.get("arch")))
    recorded = attr.get("stages") or []
    rows: list[StageRow] = []
    previous: dict[str, float] | None = None
    for i, stage in enumerate(stages):
        if i < last:
            if i >= len(recorded) and not cheap[i]:
                continue  # a stage the time budget never reached: the last one follows
            names = {n for s in cheap[i].values() for n in s}
            score = vote(cheap[i], _own(stage.judge, names))
            info = recorded[i] if i < len(recorded) else {}
            row = StageRow(
                stage.judge,
                int(info.get("judged", len(cheap[i]))),
                float(info.get("seconds", 0.0)),
            )
        else:
            score = {k: v for k, (v, _, _) in measured.items()}
            row = StageRow(stage.judge, last_judged, last_seconds)
        if previous is not None:
            both = [k for k in score if k in previous]
            row.pairs = len(both)
            row.tau = kendall([previous[k] for k in both], [score[k] for k in both])
        rows.append(row)
        previous = score
    out = Funnel(str(attr["spec"]), rows, bool(attr.get("cut")))
    passed = next((c for c in reversed(cheap) if c), {})  # the last cheap stage that ran
    pool_vote = vote(passed, {n for s in passed.values() for n in s})
    out.points = [
        Point(number, pool_vote[key], value, arch)
        for key, (value, number, arch) in sorted(measured.items(), key=lambda p: p[1][1])
        if key in pool_vote
    ]
    out.tau = kendall([p.vote for p in out.points], [p.value for p in out.points])
    return out
