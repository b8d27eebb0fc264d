"""Strategies by name: each is an Optuna sampler (and optionally a pruner).

To add a strategy, register a factory `(space, seed, **options) -> BaseSampler`:

    STRATEGIES["my_strategy"] = lambda space, seed=None, **o: MySampler(space, seed=seed, **o)

Options (`strategy_options`, `pruner_options`) are checked against the factory's own
keyword parameters before it is called, so a misspelt option is a one-line `ConfigError`
listing the allowed ones rather than a `TypeError` traceback. A factory that forwards
`**options` to a class names it with `@options_from(TheClass)` so its parameters are the
allowed ones; an unmarked `**options` factory accepts anything (its class then decides).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from normnas.errors import ConfigError
from normnas.search.samplers import EvolutionSampler, LocalSearchSampler
from normnas.search.samplers.additive import AdditiveThompsonSampler
from normnas.spaces.base import SearchSpace

SamplerFactory = Callable[..., BaseSampler]
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

GRID_LIMIT = 100_000
_NOT_OPTIONS = ("self", "space", "seed")  # given by make_sampler itself, never an option


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

    def exhausted_for(self, study: optuna.Study) -> bool:
        """Has `study` visited every grid point? (Exact for a sampler reused across studies.)"""
        return not self._get_unvisited_grid_ids(study)


def grid_size(space: SearchSpace) -> int:
    sizes = []
    for name, dist in space.distributions().items():
        if not isinstance(dist, CategoricalDistribution):
            raise ValueError(
                f"strategy 'grid' needs categorical parameters; {name!r} is {type(dist).__name__}"
            )
        sizes.append(len(dist.choices))
    return math.prod(sizes)


def options_from(target: Callable[..., Any]) -> Callable[[F], F]:
    """Mark a `**options` factory: its options are `target`'s keyword parameters."""

    def mark(factory: F) -> F:
        factory.options_from = target  # type: ignore[attr-defined]
        return factory

    return mark


def _grid(space: SearchSpace, seed: int | None = None, limit: int = GRID_LIMIT) -> BaseSampler:
    size = grid_size(space)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"grid: limit must be an integer >= 1, got {limit!r}")
    if size > limit:
        raise ValueError(
            f"strategy 'grid': space {space.name!r} has {size:,} grid points, "
            f"more than the limit {limit:,}; use another strategy or a smaller space"
        )
    grid = {n: list(d.choices) for n, d in space.distributions().items()}  # type: ignore[attr-defined]
    return _GridSampler(grid, seed=seed)


def _random(space: SearchSpace, seed: int | None = None) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@options_from(optuna.samplers.TPESampler)
def _tpe(space: SearchSpace, seed: int | None = None, **options: Any) -> BaseSampler:
    options.setdefault("multivariate", True)
    options.setdefault("n_startup_trials", 10)
    return optuna.samplers.TPESampler(seed=seed, **options)


@options_from(optuna.samplers.NSGAIISampler)
def _nsga2(space: SearchSpace, seed: int | None = None, **options: Any) -> BaseSampler:
    options.setdefault("population_size", 20)
    return optuna.samplers.NSGAIISampler(seed=seed, **options)


STRATEGIES: dict[str, SamplerFactory] = {
    "random": _random,
    "grid": _grid,
    # our samplers' constructors take (space, ..., seed=...): they are their own factories
    "evolution": EvolutionSampler,
    "local": LocalSearchSampler,
    "tpe": _tpe,
    "nsga2": _nsga2,
    "additive": AdditiveThompsonSampler,
    # other packages register here, e.g. STRATEGIES["bananas"] = make_bananas_sampler
}

PRUNERS: dict[str, Callable[..., BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "sha": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


def make_sampler(
    name: str, space: SearchSpace, seed: int | None = None, **options: Any
) -> BaseSampler:
    """The sampler of strategy `name` for `space`; options go to the strategy's factory.

    ConfigError (one line) for an unknown strategy, an unknown option or a bad value.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(sorted(STRATEGIES))}")
    factory = STRATEGIES[name]
    check_options("strategy_options", "strategy", name, factory, options)
    make = functools.partial(factory, space, seed=seed, **options)
    return _call(make, "strategy_options", "strategy", name, options)


def make_pruner(name: str | None = "none", **options: Any) -> BasePruner:
    """A pruner by name: none, sha (successive halving) or hyperband."""
    name = name or "none"
    if name not in PRUNERS:
        raise ConfigError(f"unknown pruner {name!r}; valid: {', '.join(PRUNERS)}")
    factory = PRUNERS[name]
    check_options("pruner_options", "pruner", name, factory, options)
    return _call(functools.partial(factory, **options), "pruner_options", "pruner", name, options)


# -- option checking ------------------------------------------------------------------------
def allowed_options(factory: Callable[..., Any]) -> list[str] | None:
    """The option names `factory` accepts, in signature order; None when it takes any."""
    names, open_ended = _keyword_parameters(factory)
    target = getattr(factory, "options_from", None)
    if open_ended and target is not None:
        more, open_ended = _keyword_parameters(target)
        names += [n for n in more if n not in names]
    return None if open_ended else names


def check_options(
    field: str, kind: str, name: str, factory: Callable[..., Any], options: Mapping[str, Any]
) -> None:
    """ConfigError naming the first option `factory` does not take, and the ones it does."""
    allowed = allowed_options(factory)
    for option in options:
        if option == "seed" and kind == "strategy":
            raise ConfigError(
                f"{field}: 'seed' is not an option of strategy {name!r}; set the run's seed"
            )
        if allowed is not None and option not in allowed:
            listed = ", ".join(allowed) if allowed else "(none)"
            raise ConfigError(
                f"{field}: unknown option {option!r} for {kind} {name!r}; allowed: {listed}"
            )


def _keyword_parameters(fn: Callable[..., Any]) -> tuple[list[str], bool]:
    """(names passable by keyword, except space/seed/self; whether it takes **kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: accept anything
        return [], True
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in params if p.kind in keyword and p.name not in _NOT_OPTIONS]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _call(make: Callable[[], T], field: str, kind: str, name: str, options: Mapping[str, Any]) -> T:
    """`make()`, its ValueError (or TypeError for a bad option value) as one ConfigError line."""
    try:
        return make()
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        if isinstance(err, TypeError) and not options:
            raise  # a TypeError with no options given is a bug, not the user's input
        raise _config_error(str(err), field, kind, name, options) from None


def _config_error(
    detail: str, field: str, kind: str, name: str, options: Mapping[str, Any]
) -> ConfigError:
    detail = detail.strip()
    if detail.startswith(f"{name}: "):  # our samplers prefix their messages with their name
        detail = detail[len(name) + 2 :]
    where = f"{kind} {name!r}"
    if not options:  # e.g. grid over its limit: the strategy and space, not an option
        return ConfigError(detail if where in detail else f"{where}: {detail}")
    if not any(option in detail for option in options):
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        detail = f"rejected {given}: {detail}"
    return ConfigError(f"{field}: {where}: {detail}")
