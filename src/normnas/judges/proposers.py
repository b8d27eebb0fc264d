"""Who proposes the candidates of a cascade's first stage: random, evolution or local search.

`random` (the default) draws the stage's N candidates up front, distinct canonical classes.
`evolution` and `local` search *on the first stage's own judge*: each proposal depends on
the scores of the candidates judged so far, so the stage spends its N judgements where that
judge scores high instead of spreading them over the space.

Their objective is the judge's score as one number, comparable across candidates without a
population: the z-sum of `signed_log(score)` of every score the judge gives, against the
first REFERENCE candidates of the stage (random draws), exactly as `--evaluator proxy`
scores one architecture (`normnas.proxies.evaluator.ReferenceScale`). A rank vote is not
used here: a candidate's vote changes as the pool grows, and an evolution chasing a moving
objective converges on the cells the pool happens to overrate.

- `evolution`: aging evolution with the evolution strategy's defaults (population 10,
  tournament 3 with replacement, one mutation), after REFERENCE random candidates.
- `local`: from the best candidate so far, an unjudged neighbour (one choice away) at random;
  when every neighbour of the best was judged, a random unjudged candidate (a restart).

Both are deterministic given the seed and the scores, so a resumed stage proposes again
exactly what it judged before the kill and judges only what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from normnas.config import PROPOSERS
from normnas.errors import ConfigError
from normnas.judges.combiner import Candidate
from normnas.proxies.evaluator import ReferenceScale
from normnas.spaces.base import Arch, SearchSpace

__all__ = ["PROPOSERS", "Objective", "Proposer", "check_proposer"]
REFERENCE = 16  # random candidates before the search starts: its objective's reference
POPULATION, TOURNAMENT = 10, 3  # the evolution strategy's defaults (NAS-Bench-201's REA)
TRIES = 200  # proposals of known classes before a proposer falls back to a random draw


def check_proposer(name: str) -> str:
    if name not in PROPOSERS:
        raise ConfigError(f"proposer: unknown {name!r}; valid: {', '.join(PROPOSERS)}")
    return name


class Objective:
    """The z-sum of a candidate's scores against the first REFERENCE candidates' scores."""

    def __init__(self, reference: Sequence[Candidate]) -> None:
        # the scores some reference candidate has a finite value of (a resumed stage reads
        # only finite scores back: the same names either way)
        self.names = sorted({k for c in reference for k, v in c.scores.items() if math.isfinite(v)})
        rows = [{n: c.scores.get(n, math.nan) for n in self.names} for c in reference]
        self.scale = ReferenceScale.fit(rows, self.names)

    def __call__(self, cand: Candidate) -> float:
        # a score the judge could not give counts as the worst (Z_FLOOR), as in the evaluator
        return self.scale.combine({n: cand.scores.get(n, -math.inf) for n in self.names})


class Proposer:
    """`next(judged)`: the next architecture for the stage to judge, given the candidates it
    judged so far (in order, with their scores); None when the space has nothing new."""

    def __init__(self, name: str, space: SearchSpace, rng: np.random.Generator) -> None:
        self.name = check_proposer(name)
        self.space = space
        self.rng = rng
        self._objective: Objective | None = None

    def _key(self, arch: Arch) -> tuple[str, Arch]:
        canon = self.space.canonical(arch)
        return self.space.to_str(canon), canon

    def _random(self, seen: set[str]) -> Arch | None:
        for _ in range(TRIES * 5):
            key, canon = self._key(self.space.sample(self.rng))
            if key not in seen:
                return canon
        return None

    def objective(self, judged: Sequence[Candidate]) -> Objective:
        if self._objective is None:
            self._objective = Objective(judged[:REFERENCE])
        return self._objective

    def next(self, judged: Sequence[Candidate]) -> Arch | None:
        seen = {c.key for c in judged}
        if self.name == "random" or len(judged) < max(REFERENCE, POPULATION):
            return self._random(seen)
        score = self.objective(judged)
        if self.name == "evolution":
            population = judged[-POPULATION:]
            for _ in range(TRIES):
                picks = self.rng.integers(0, len(population), size=TOURNAMENT)
                parent = max((population[i] for i in picks), key=score)
                key, canon = self._key(self.space.mutate(parent.arch, self.rng))
                if key not in seen:
                    return canon
            return self._random(seen)
        # local: an unjudged neighbour of the best so far, else a restart
        best = max(judged, key=score)
        fresh: dict[str, Arch] = {}
        for arch in self.space.neighbors(best.arch):
            key, canon = self._key(arch)
            if key not in seen:
                fresh[key] = canon
        if fresh:
            keys = sorted(fresh)
            return fresh[keys[int(self.rng.integers(len(keys)))]]
        return self._random(seen)
