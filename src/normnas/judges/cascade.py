"""A cascade of judges: cheap judges screen many candidates, the dearest judges the best few.

`--cascade proxy:2000,bn-indicator:200,train:20` lists the stages from cheapest to dearest,
each `judge:N` (how many candidates that stage judges); the last stage is the search's own
evaluator and may leave N out (the rest of the budget). The first stage judges N candidates
drawn by the proposer (random, distinct canonical classes); each later cheap stage judges
the N best of those the stage before it judged (by the combiner once it can predict, else by
the rank vote of the scores so far); the last stage's candidates are chosen one at a time by
`CascadeSampler`: the combiner (see `judges.combiner`) is refitted on every result of the
last stage and promotes by Thompson sampling among the candidates the cheap stages passed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from normnas.errors import ConfigError
from normnas.judges.combiner import Candidate, Combiner
from normnas.judges.proposers import Proposer
from normnas.search.samplers._base import ArchSampler
from normnas.spaces.base import Arch, SearchSpace

JUDGES = ("proxy", "bn-indicator", "supernet", "train")
STAGE_ATTR = "cascade_stage"  # the index of the dearest stage a trial's candidate reached
SCORE_PREFIX = "x."  # every score a candidate received: x.synflow, x.bn_indicator, ...


@dataclass(frozen=True)
class Stage:
    judge: str
    n: int | None  # candidates it judges; None: the last stage, the rest of the budget


def parse_cascade(spec: str | Sequence[str]) -> tuple[Stage, ...]:
    """`"proxy:2000,bn-indicator:200,train:20"` as stages; ConfigError (one line) naming
    what is wrong: an unknown judge, a count that is not an integer >= 1, a cheap stage
    without a count, fewer than two stages, or a stage judging more than the one before."""
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    if len(parts) < 2 or any(not p for p in parts):
        raise ConfigError(
            f"--cascade {spec!r}: expected at least two stages judge:N,...,judge[:N] "
            "from cheapest to dearest, e.g. proxy:1000,train"
        )
    stages: list[Stage] = []
    for i, part in enumerate(parts):
        judge, _, count = part.partition(":")
        judge = judge.strip().lower()
        if judge not in JUDGES:
            raise ConfigError(
                f"--cascade: unknown judge {judge!r} in {part!r}; valid: {', '.join(JUDGES)}"
            )
        last = i == len(parts) - 1
        if not count.strip():
            if not last:
                raise ConfigError(
                    f"--cascade: stage {part!r} needs a count (judge:N); only the last may "
                    "leave it out"
                )
            stages.append(Stage(judge, None))
            continue
        if not count.strip().isdigit() or int(count) < 1:
            raise ConfigError(
                f"--cascade: stage {part!r}: expected an integer count >= 1, got {count!r}"
            )
        stages.append(Stage(judge, int(count)))
    for before, after in itertools.pairwise(stages):
        if after.n is not None and before.n is not None and after.n > before.n:
            raise ConfigError(
                f"--cascade: stage {after.judge}:{after.n} would judge more candidates than "
                f"the {before.n} that {before.judge} passed to it"
            )
    return tuple(stages)


def cascade_str(stages: Sequence[Stage]) -> str:
    return ",".join(s.judge if s.n is None else f"{s.judge}:{s.n}" for s in stages)


class CascadeSampler(ArchSampler):
    """The last stage's proposer: the combiner's Thompson pick among the candidates the
    cheap stages passed (`pool()`); each proposed trial gets their scores as `x.NAME`
    attributes and `cascade_stage`. When every candidate has been judged the sampler is
    exhausted (the runner stops: a cascade judges no more than its stages passed)."""

    def __init__(
        self,
        space: SearchSpace,
        pool: Callable[[], Sequence[Candidate]] | Sequence[Candidate],
        score_names: Sequence[str],
        seed: int | None = None,
        stage: int = 1,
        thompson: bool = True,
        use_arch: bool = True,
    ) -> None:
        super().__init__(space, seed)
        self.stop_reason = "cascade"  # the runner's stopped_by once every candidate is judged
        self._pool = pool
        self.combiner = Combiner(space, score_names, use_arch=use_arch)
        self.stage = stage
        self.thompson = thompson

    def pool(self) -> Sequence[Candidate]:
        return self._pool() if callable(self._pool) else self._pool

    def propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        pool = self.pool()
        history = self.history(study, trial)
        judged = {s.key: float(s.value) for s in history if s.value is not None}
        # screened candidates (the cheap stages' own trials) are the pool, not judged ones
        known = {s.key for s in history if not s.trial.user_attrs.get("cascade_screen")}
        choice = self.combiner.choose(pool, judged, rng, self.thompson, exclude=known)
        if choice is None:  # every candidate judged: say so, hand a random one to finish
            self.exhausted = True
            return self.space.sample(rng)
        cand = pool[choice]
        # the last open candidate: the runner stops after it instead of asking again
        left = sum(1 for c in pool if c.key not in known and c.key not in judged)
        self.exhausted = left <= 1
        storage, tid = study._storage, trial._trial_id
        storage.set_trial_user_attr(tid, STAGE_ATTR, self.stage)
        for name, value in cand.scores.items():
            if math.isfinite(value):
                storage.set_trial_user_attr(tid, SCORE_PREFIX + name, float(value))
        return cand.arch


def top_by_vote(pool: Sequence[Candidate], names: Sequence[str], n: int) -> list[Candidate]:
    """The `n` candidates of `pool` with the best rank vote of their `names` scores."""
    from normnas.judges.combiner import ranks01

    if not names:
        return list(pool[:n])
    votes = np.mean([ranks01([c.scores.get(k, -math.inf) for c in pool]) for k in names], axis=0)
    order = sorted(range(len(pool)), key=lambda i: (-votes[i], i))
    return [pool[i] for i in order[:n]]


def bench_plan(stages: Sequence[Stage], thompson: bool = True, proposer: str = "random") -> Any:
    """The per-run set-up of a cascade on a NAS-Bench-201 table (see `BenchCascade`)."""
    from normnas.judges.proposers import check_proposer

    check_proposer(proposer)
    if stages[-1].judge != "train" or any(s.judge != "proxy" for s in stages[:-1]):
        raise ConfigError(
            f"--cascade {cascade_str(stages)}: on a table a cascade is proxy stages, then train "
            "(the table answers training; the packaged proxy scores answer proxy)"
        )
    return BenchCascade(tuple(stages), thompson, proposer)


SCREEN_STREAM = 0xCA5C  # the screening's draws: a stream of their own beside the sampler's


def _proposed(space: SearchSpace, scores: Any, n: int, propose: Any) -> list[Candidate]:
    """`n` cells of distinct classes from `propose`, each scored by the table's proxy scores."""
    pool: list[Candidate] = []
    while len(pool) < n:
        arch = propose.next(pool)
        if arch is None:
            break
        key = space.to_str(arch)
        if key not in scores.scores:
            raise ConfigError(f"{scores.path}: no scores for the class {key}")
        pool.append(Candidate(arch, key, dict(scores.scores[key]), 0, scores.cost_s[key]))
    return pool


@dataclass(frozen=True)
class BenchCascade:
    """Screen `stages[0].n` cells of distinct classes from the proposer (random, or a search
    on the proxies' z-sum: see `judges.proposers`) with the shipped proxy scores (their
    measured seconds charged to the run's budget), keep the best by vote through any
    further proxy stage, and return the `CascadeSampler` of the last stage (picklable: a
    process pool sends it to its workers)."""

    stages: tuple[Stage, ...]
    thompson: bool = True
    proposer: str = "random"

    def __call__(self, ctx: Any, seed: int) -> tuple[ArchSampler, float]:
        scores = ctx.proxy_scores
        if scores is None:
            raise ConfigError("--cascade: no proxy scores loaded")
        rng = np.random.default_rng([seed, SCREEN_STREAM])
        first = self.stages[0].n or 1
        names = tuple(scores.proxies)
        if self.proposer == "random":  # the warm-up's draws: its rows stay comparable
            picks = scores.warmup(ctx.space, first, rng)
            pool = [
                Candidate(p.arch, ctx.space.to_str(p.arch), dict(p.scores), 0, p.cost_s)
                for p in picks
            ]
        else:
            pool = _proposed(ctx.space, scores, first, Proposer(self.proposer, ctx.space, rng))
        charged = float(sum(c.cost_s for c in pool))
        for i, stage in enumerate(self.stages[1:-1], start=1):
            pool = top_by_vote(pool, names, stage.n or len(pool))
            for c in pool:
                c.stage = i
        sampler = CascadeSampler(
            ctx.space, pool, names, seed=seed, stage=len(self.stages) - 1, thompson=self.thompson
        )
        return sampler, charged
