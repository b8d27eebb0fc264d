"""The cheap stages of a cascade in a real search: judge candidates, record every score in
the study, resume after a kill.

Each candidate a cheap stage judges is one trial of the study, told PRUNED (Optuna's word
for "stopped at a low fidelity"), with attributes `cascade_screen` (True), `cascade_stage`
(the stage's index), `cascade_judge`, `key`, `arch`, `cost_s` and its scores `x.NAME`
(every proxy's raw score, `x.bn_indicator`, `x.supernet`). These trials have no `status`,
so the runner's budget, its duplicate check, the leaderboard and `best` never count them:
they are the cascade's record, read by the report's funnel. A rerun of the same command
reads them back and judges only what is missing, so a kill loses at most the candidate
being judged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from normnas.judges.cascade import SCORE_PREFIX, STAGE_ATTR, Stage, top_by_vote
from normnas.judges.combiner import Candidate
from normnas.judges.proposers import Proposer
from normnas.spaces.base import Arch, SearchSpace

SCREEN_ATTR = "cascade_screen"
JUDGE_ATTR = "cascade_judge"
SCREEN_STREAM = 0xCA5C


@dataclass
class ScreenJudge:
    """A cheap judge as the cascade calls it: `scores(arch) -> {name: value}`."""

    name: str
    scores: Callable[[Arch], dict[str, float]]


def screened(study: optuna.Study, space: SearchSpace) -> dict[tuple[int, str], Candidate]:
    """The study's screened candidates by (stage, key)."""
    out: dict[tuple[int, str], Candidate] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        attrs = t.user_attrs
        if not attrs.get(SCREEN_ATTR):
            continue
        try:
            arch = space.from_str(str(attrs["arch"]))
        except (KeyError, ValueError):
            continue
        scores = {
            k[len(SCORE_PREFIX) :]: float(v)
            for k, v in attrs.items()
            if k.startswith(SCORE_PREFIX) and isinstance(v, (int, float))
        }
        stage = int(attrs.get(STAGE_ATTR, 0))
        cand = Candidate(arch, str(attrs["key"]), scores, stage, float(attrs.get("cost_s", 0)))
        out[(stage, cand.key)] = cand
    return out


def _record(
    study: optuna.Study, space: SearchSpace, cand: Candidate, stage: int, judge: str, cost: float
) -> None:
    params = space.to_params(cand.arch)
    dists = space.distributions()
    attrs: dict[str, Any] = {
        SCREEN_ATTR: True,
        STAGE_ATTR: stage,
        JUDGE_ATTR: judge,
        "key": cand.key,
        "arch": space.to_str(cand.arch),
        "cost_s": float(cost),
    }
    for name, value in cand.scores.items():
        if math.isfinite(value):
            attrs[SCORE_PREFIX + name] = float(value)
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params=params,
            distributions={k: dists[k] for k in params},
            user_attrs=attrs,
        )
    )


def _wanted(
    space: SearchSpace,
    n: int,
    pool: Sequence[Candidate],
    names: Sequence[str],
    judged: Sequence[Candidate],
    proposer: str,
    seed: int,
    first: bool,
) -> Iterator[Candidate]:
    """The candidates a stage judges, in order: the first stage's from its proposer (which
    reads `judged` as the stage fills it), a later stage's the `n` best of `pool` by vote."""
    if not first:
        yield from top_by_vote(pool, names, n)
        return
    propose = Proposer(proposer, space, np.random.default_rng([seed, SCREEN_STREAM]))
    while len(judged) < n:
        arch = propose.next(judged)
        if arch is None:  # a small space: every class judged
            return
        yield Candidate(arch, space.to_str(arch))


@dataclass
class ScreenReport:
    pool: list[Candidate]  # what the last cheap stage passed to the dearest judge
    per_stage: list[tuple[str, int, float]]  # (judge, candidates judged, seconds) per stage
    cut: bool  # the time budget ended a stage early


def run_screens(
    study: optuna.Study,
    space: SearchSpace,
    stages: Sequence[Stage],
    judges: Callable[[str], ScreenJudge],
    seed: int,
    time_left: Callable[[], float | None] = lambda: None,
    echo: Callable[[str], None] | None = None,
    proposer: str = "random",
) -> ScreenReport:
    """Run the cheap stages (`stages[:-1]`) and return the candidates for the last one.

    Stage 0 judges `n` distinct classes from `proposer` (see `judges.proposers`) with a
    generator seeded by `seed` (a rerun proposes the same ones, so what was recorded is
    skipped); stage i > 0 takes the `n` best by the rank
    vote of the scores of stages < i among those stage i-1 judged. A stage stops early when
    `time_left()` reaches 0 (the rest of the run needs its share: the caller says how much
    is left for screening).
    """
    done = screened(study, space)
    pool: list[Candidate] = []
    per_stage: list[tuple[str, int, float]] = []
    cut = False
    names: list[str] = []
    for i, stage in enumerate(stages[:-1]):
        n = int(stage.n or 1)
        judge = judges(stage.judge)
        judged: list[Candidate] = []
        spent = 0.0
        for cand in _wanted(space, n, pool, names, judged, proposer, seed, first=i == 0):
            prior = done.get((i, cand.key))
            if prior is not None:
                judged.append(prior)
                spent += prior.cost_s
                continue
            left = time_left()
            if left is not None and left <= 0:
                cut = True
                break
            start = time.perf_counter()
            try:
                new_scores = judge.scores(cand.arch)
            except Exception:  # a candidate the judge cannot score ranks last, never fails
                new_scores = {}
            cost = time.perf_counter() - start
            item = Candidate(cand.arch, cand.key, {**cand.scores, **new_scores}, i, cost)
            _record(study, space, item, i, stage.judge, cost)
            judged.append(item)
            spent += cost
        names = sorted({k for c in judged for k in c.scores})
        per_stage.append((stage.judge, len(judged), spent))
        if echo is not None:
            echo(f"cascade stage {i + 1} {stage.judge}: {len(judged)} judged in {spent:.1f}s")
        pool = judged
        if cut or not pool:
            break
    return ScreenReport(pool, per_stage, cut)


CASCADE_ATTR = "cascade"  # study attr: the spec and each cheap stage's (judge, n, seconds)
SCREEN_SHARE = 0.5  # of the time left, at most this much goes to the cheap stages


def screen_judge(cfg: Any, parts: Any, url: str, name: str) -> ScreenJudge:
    """The cheap judge `name` of a run: proxies give each proxy's raw score; a supernet or
    the BN-scale indicator (trained once beside the study, as for `--evaluator`) gives
    its score under its own name."""
    from normnas.judges.registry import make_evaluator

    judge = make_evaluator(cfg.model_copy(update={"evaluator": name}), parts, url)
    if name == "proxy":
        return ScreenJudge(name, judge.scores)  # type: ignore[attr-defined]
    label = name.replace("-", "_")

    def score(arch: Arch) -> dict[str, float]:
        result = judge.evaluate(arch)
        if result.status != "ok" or result.accuracy is None:
            raise ValueError(result.error or f"{name} gave no score")
        return {label: float(result.accuracy)}

    return ScreenJudge(name, score)


def prepare_cascade(
    cfg: Any,
    parts: Any,
    study: optuna.Study,
    url: str,
    stages: Sequence[Stage],
    time_left: Callable[[], float | None],
    echo: Callable[[str], None] | None = None,
) -> tuple[Any, str]:
    """Run the cheap stages of `stages` for a search and return the last stage's sampler
    and a line for the user. The cheap stages get at most SCREEN_SHARE of the time left
    when they start."""
    from normnas.judges.cascade import CascadeSampler, cascade_str

    left0 = time_left()
    begun = time.monotonic()
    share = None if left0 is None else SCREEN_SHARE * left0

    def screen_left() -> float | None:
        return None if share is None else share - (time.monotonic() - begun)

    judges: dict[str, ScreenJudge] = {}

    def judge_of(name: str) -> ScreenJudge:
        if name not in judges:
            judges[name] = screen_judge(cfg, parts, url, name)
        return judges[name]

    from normnas.train.threads import cpu_threads, run_threads

    with cpu_threads(run_threads()):  # see train.threads
        report = run_screens(
            study, parts.space, stages, judge_of, cfg.seed, screen_left, echo, cfg.proposer
        )
    names = sorted({k for c in report.pool for k in c.scores})
    study.set_user_attr(
        CASCADE_ATTR,
        {
            "spec": cascade_str(stages),
            "proposer": cfg.proposer,
            "stages": [
                {"judge": j, "judged": n, "seconds": round(s, 3)} for j, n, s in report.per_stage
            ],
            "cut": report.cut,
        },
    )
    sampler = CascadeSampler(parts.space, report.pool, names, seed=cfg.seed, stage=len(stages) - 1)
    funnel = " -> ".join(f"{j} {n} ({s:.0f}s)" for j, n, s in report.per_stage)
    by = "" if cfg.proposer == "random" else f" (first stage proposed by {cfg.proposer})"
    line = f"cascade {cascade_str(stages)}{by}: {funnel} -> {stages[-1].judge}"
    if report.cut:
        line += " (a stage was cut short by --time: it judged fewer than asked)"
    return sampler, line
