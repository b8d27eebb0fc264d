"""Strategies by name: each is an Optuna sampler (and optionally a pruner).

To add a strategy, register a factory `(space, seed, **options) -> BaseSampler`:

    STRATEGIES["my_strategy"] = lambda space, seed=None, **o: MySampler(space, seed=seed, **o)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from normnas.search.samplers import EvolutionSampler, LocalSearchSampler
from normnas.search.samplers.additive import AdditiveThompsonSampler
from normnas.spaces.base import SearchSpace

SamplerFactory = Callable[..., BaseSampler]

GRID_LIMIT = 100_000


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, but it flags exhaustion instead of calling `study.stop()`.

    `study.stop()` only works inside `study.optimize`; our runner reads `exhausted`.
    """

    exhausted = False

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if not self._get_unvisited_grid_ids(study):
            self.exhausted = True


def grid_size(space: SearchSpace) -> int:
    sizes = []
    for name, dist in space.distributions().items():
        if not isinstance(dist, CategoricalDistribution):
            raise ValueError(
                f"strategy 'grid' needs categorical parameters; {name!r} is {type(dist).__name__}"
            )
        sizes.append(len(dist.choices))
    return math.prod(sizes)


def _grid(
    space: SearchSpace, seed: int | None = None, limit: int = GRID_LIMIT, **_: Any
) -> BaseSampler:
    size = grid_size(space)
    if size > limit:
        raise ValueError(
            f"strategy 'grid': space {space.name!r} has {size:,} grid points, "
            f"more than the limit {limit:,}; use another strategy or a smaller space"
        )
    grid = {n: list(d.choices) for n, d in space.distributions().items()}  # type: ignore[attr-defined]
    return _GridSampler(grid, seed=seed)


def _random(space: SearchSpace, seed: int | None = None, **_: Any) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _tpe(space: SearchSpace, seed: int | None = None, **options: Any) -> BaseSampler:
    options.setdefault("multivariate", True)
    options.setdefault("n_startup_trials", 10)
    return optuna.samplers.TPESampler(seed=seed, **options)


def _nsga2(space: SearchSpace, seed: int | None = None, **options: Any) -> BaseSampler:
    options.setdefault("population_size", 20)
    return optuna.samplers.NSGAIISampler(seed=seed, **options)


def _evolution(space: SearchSpace, seed: int | None = None, **options: Any) -> BaseSampler:
    return EvolutionSampler(space, seed=seed, **options)


def _local(space: SearchSpace, seed: int | None = None, **options: Any) -> BaseSampler:
    return LocalSearchSampler(space, seed=seed, **options)


STRATEGIES: dict[str, SamplerFactory] = {
    "random": _random,
    "grid": _grid,
    "evolution": _evolution,
    "local": _local,
    "tpe": _tpe,
    "nsga2": _nsga2,
    "additive": lambda space, seed=None, **o: AdditiveThompsonSampler(space, seed=seed, **o),
    # other packages register here, e.g. STRATEGIES["bananas"] = make_bananas_sampler
}

PRUNERS: dict[str, Callable[..., BasePruner]] = {
    "none": lambda **o: optuna.pruners.NopPruner(),
    "sha": lambda **o: optuna.pruners.SuccessiveHalvingPruner(**o),
    "hyperband": lambda **o: optuna.pruners.HyperbandPruner(**o),
}


def make_sampler(
    name: str, space: SearchSpace, seed: int | None = None, **options: Any
) -> BaseSampler:
    """The sampler of strategy `name` for `space`; options go to the strategy's factory."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](space, seed=seed, **options)


def make_pruner(name: str | None = "none", **options: Any) -> BasePruner:
    """A pruner by name: none, sha (successive halving) or hyperband."""
    name = name or "none"
    if name not in PRUNERS:
        raise ValueError(f"unknown pruner {name!r}; valid: {', '.join(PRUNERS)}")
    return PRUNERS[name](**options)
