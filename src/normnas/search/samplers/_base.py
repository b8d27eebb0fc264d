"""Shared base of our whole-architecture samplers: propose an arch, hand Optuna its params."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from normnas.spaces.base import Arch, SearchSpace


@dataclass(frozen=True)
class Seen:
    """A trial of the study whose params hold a complete architecture of the sampler's space.

    `value` is `sign * values[0]` (larger is better) for a COMPLETE trial with a finite first
    objective, else None: RUNNING, FAILED and PRUNED trials, and +-inf results, are known
    architectures (never proposed again where a sampler avoids repeats) but no model learns
    from them.
    """

    number: int
    state: TrialState
    arch: Arch
    key: str
    value: float | None
    trial: FrozenTrial


class ArchSampler(BaseSampler):
    """A sampler that proposes a whole architecture per trial from the study's history.

    `infer_relative_search_space` is the space's full (fixed) parameter set. `sample_relative`
    proposes an architecture and returns the params of it that the given search space asks
    for with the space's own distribution (a `PartialFixedSampler` removes its fixed names);
    any other name in that search space is drawn by the independent sampler. Names the trial
    asks for outside the relative search space go to `sample_independent`: a `RandomSampler`
    seeded from `seed`. So an arbitrary Optuna objective still runs, it just gets random
    search for what is not an architecture of the space.

    History trials whose params are not a complete architecture of the space (another
    objective, a RUNNING trial whose params are not all written yet, values outside the
    choices) are skipped. Every random draw uses a generator seeded by (seed, trial number):
    the same study history gives the same proposal after a restart.
    """

    def __init__(self, space: SearchSpace, seed: int | None = None) -> None:
        self.space = space
        self.seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self._fallback = RandomSampler(seed=self.seed)
        self._dists: dict[str, BaseDistribution] = dict(space.distributions())
        # trial number -> parsed finished trial (None: not an arch of this space), valid for
        # the study `_cache_owner` only: a sampler reused for another study starts afresh
        self._cache: dict[int, Seen | None] = {}
        self._cache_owner: tuple[int, int, str] | None = None
        self.exhausted = False  # set when the sampler knows every architecture was proposed

    # -- Optuna hooks -------------------------------------------------------------------
    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        ours = [n for n, d in search_space.items() if self._dists.get(n) == d]
        params: dict[str, Any] = {}
        if ours:
            self._own(study)
            proposal = self.space.to_params(self.propose(study, trial, self.rng(trial.number)))
            # a space with conditional parameters (LayerSpace) gives only the active ones:
            # the trial never asks for the others, so whatever the fallback draws is unused
            params = {n: proposal[n] for n in ours if n in proposal}
        for name, dist in search_space.items():
            if name not in params:  # not a parameter of this architecture space
                params[name] = self._fallback.sample_independent(study, trial, name, dist)
        return params

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def exhausted_for(self, study: optuna.Study) -> bool:
        """`exhausted`, for `study`: False while this sampler has not yet sampled in it."""
        return self.exhausted and _owner(study) == self._cache_owner

    # -- for subclasses -----------------------------------------------------------------
    def propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        raise NotImplementedError

    def rng(self, number: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, number, salt])

    def key(self, arch: Arch) -> str:
        return self.space.to_str(self.space.canonical(arch))

    def history(self, study: optuna.Study, trial: FrozenTrial | None = None) -> list[Seen]:
        """The study's architectures in trial-number order, without `trial` itself."""
        self._own(study)
        sign = fitness(study)[1]
        trials = study._get_trials(deepcopy=False, use_cache=True)
        skip = None if trial is None else trial.number
        seen = (self._seen(t, sign) for t in sorted(trials, key=lambda t: t.number))
        return [s for s in seen if s is not None and s.number != skip]

    def arch_of(self, params: Mapping[str, Any]) -> Arch | None:
        """The architecture in `params` (extra names ignored), or None if it is not one.

        Which names must be there is the space's to say: `from_params` refuses a missing
        one (every name for fixed-parameter spaces, the active ones for LayerSpace), so a
        trial whose params are still being written is no architecture.
        """
        known = {name: params[name] for name in self._dists if name in params}
        if not known:
            return None
        try:
            return self.space.from_params(known)
        except (ValueError, KeyError, TypeError):  # values outside the choices
            return None

    # -- internals ------------------------------------------------------------------------
    def _own(self, study: optuna.Study) -> None:
        """Forget what was cached (and `exhausted`) when this sampler meets another study."""
        owner = _owner(study)
        if owner != self._cache_owner:
            self._cache, self._cache_owner = {}, owner
            self.exhausted = False

    def _seen(self, trial: FrozenTrial, sign: float) -> Seen | None:
        finished = trial.state.is_finished()
        if finished and trial.number in self._cache:
            return self._cache[trial.number]
        arch = self.arch_of(trial.params)
        seen = None
        if arch is not None:
            value = None
            if trial.state == TrialState.COMPLETE and trial.values:
                v = float(trial.values[0])
                value = sign * v if math.isfinite(v) else None
            seen = Seen(trial.number, trial.state, arch, self.key(arch), value, trial)
        if finished:  # a finished trial's params and values never change
            self._cache[trial.number] = seen
        return seen


def _owner(study: optuna.Study) -> tuple[int, int, str]:
    """Which study a cache belongs to (in-memory storages number their studies from 0)."""
    return (id(study._storage), study._study_id, study.study_name)


def fitness(study: optuna.Study) -> tuple[int, float]:
    """(objective index, sign) so that larger `sign * values[0]` is better.

    Multi-objective studies rank by their first objective (documented choice): evolution and
    local search stay simple and predictable; use `nsga2` for a real Pareto search.
    """
    direction = study.directions[0]
    return 0, (1.0 if direction == StudyDirection.MAXIMIZE else -1.0)


def scored(history: list[Seen]) -> list[Seen]:
    """The entries a model may learn from: COMPLETE with a finite first objective."""
    return [s for s in history if s.value is not None]


def check_int(owner: str, name: str, value: object, minimum: int) -> int:
    """`value` when it is an integer >= `minimum`; else a one-line ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(owner: str, name: str, value: object) -> float:
    """`value` as a float when it is a finite number > 0; else a one-line ValueError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0 < value < math.inf:  # type: ignore[operator]
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]
