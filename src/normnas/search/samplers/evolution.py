"""Regularized (aging) evolution, Real et al. 2019, as an Optuna sampler over the history."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from normnas.search.samplers._base import ArchSampler, check_int, scored
from normnas.spaces.base import Arch, SearchSpace


class EvolutionSampler(ArchSampler):
    """Aging evolution with NAS-Bench-201's REA defaults: population 10, tournament 3.

    Stateless between trials: the population is the last `population_size` COMPLETE trials
    with a finite result, in trial-number order (the oldest ages out), so a restarted or
    parallel worker reading the same storage continues the same evolution. Until the study
    holds `population_size` such trials, proposals are random. The tournament draws
    `sample_size` members with replacement (as NAS-Bench-201's REA does) and mutates the best
    by one choice. Multi-objective studies rank by the first objective.
    """

    def __init__(
        self,
        space: SearchSpace,
        population_size: int = 10,
        sample_size: int = 3,
        seed: int | None = None,
    ) -> None:
        check_int("evolution", "population_size", population_size, 1)
        check_int("evolution", "sample_size", sample_size, 1)
        super().__init__(space, seed)
        self.population_size = population_size
        self.sample_size = sample_size

    def propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        history = scored(self.history(study, trial))
        if len(history) < self.population_size:
            return self.space.sample(rng)
        population = history[-self.population_size :]
        picks = rng.integers(0, len(population), size=self.sample_size)
        parent = max((population[i] for i in picks), key=lambda s: s.value)  # type: ignore[arg-type, return-value]
        return self.space.mutate(parent.arch, rng)
