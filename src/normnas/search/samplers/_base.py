"""Shared base of our whole-architecture samplers: propose an arch, hand Optuna its params."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from normnas.spaces.base import Arch, SearchSpace


class ArchSampler(BaseSampler):
    """A sampler that proposes a whole architecture per trial from the study's history.

    `infer_relative_search_space` is the space's full (fixed) parameter set, and
    `sample_relative` returns `space.to_params(arch)`, so the space's define-by-run `suggest`
    receives the proposed architecture. Every random draw uses a generator seeded by
    (seed, trial number): the same study history gives the same proposal after a restart.
    """

    def __init__(self, space: SearchSpace, seed: int | None = None) -> None:
        self.space = space
        self.seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self._fallback = RandomSampler(seed=self.seed)
        self._keys: dict[int, str | None] = {}  # trial number -> canonical key (cache)
        self.exhausted = False  # set when the sampler knows every architecture was proposed

    # -- Optuna hooks -------------------------------------------------------------------
    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self.space.distributions())

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        arch = self.propose(study, trial, self.rng(trial.number))
        return self.space.to_params(arch)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    # -- for subclasses -----------------------------------------------------------------
    def propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        raise NotImplementedError

    def rng(self, number: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, number, salt])

    def key(self, arch: Arch) -> str:
        return self.space.to_str(self.space.canonical(arch))

    def trial_key(self, trial: FrozenTrial) -> str | None:
        """Canonical key of a trial's architecture, cached by trial number (None if partial)."""
        if trial.number in self._keys and trial.state.is_finished():
            return self._keys[trial.number]
        try:
            key: str | None = self.key(self.space.from_params(trial.params))
        except Exception:  # a trial without (all) params: interrupted before suggest
            key = None
        if trial.state.is_finished():
            self._keys[trial.number] = key
        return key


def completed(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials in trial-number order (the storage's order), without deep copies."""
    trials = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
    return sorted(trials, key=lambda t: t.number)


def fitness(study: optuna.Study) -> tuple[int, float]:
    """(objective index, sign) so that larger `sign * values[0]` is better.

    Multi-objective studies rank by their first objective (documented choice): evolution and
    local search stay simple and predictable; use `nsga2` for a real Pareto search.
    """
    direction = study.directions[0]
    return 0, (1.0 if direction == StudyDirection.MAXIMIZE else -1.0)


def score(trial: FrozenTrial, sign: float) -> float:
    values: Sequence[float] | None = trial.values
    return sign * values[0] if values else float("-inf")
