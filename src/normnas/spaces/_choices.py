"""Shared plumbing for spaces whose every parameter is a fixed categorical choice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution


def categorical_distributions(choices: Mapping[str, Sequence[Any]]) -> dict[str, BaseDistribution]:
    return {name: CategoricalDistribution(tuple(values)) for name, values in choices.items()}


def suggest_all(trial: optuna.Trial, choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Ask the trial for every parameter, in a fixed order, and return the values."""
    return {
        name: trial.suggest_categorical(name, tuple(values)) for name, values in choices.items()
    }


def check_params(
    space: str, params: Mapping[str, Any], choices: Mapping[str, Sequence[Any]]
) -> None:
    """ValueError naming the first missing, unknown or out-of-range parameter."""
    missing = [name for name in choices if name not in params]
    if missing:
        raise ValueError(f"{space}: missing parameter {missing[0]!r}; expected {list(choices)}")
    unknown = [name for name in params if name not in choices]
    if unknown:
        raise ValueError(f"{space}: unknown parameter {unknown[0]!r}; expected {list(choices)}")
    for name, values in choices.items():
        if not any(_same(params[name], v) for v in values):
            raise ValueError(f"{space}: {name}={params[name]!r} is not one of {list(values)}")


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python: keep True distinct from 1 so residual=1 is rejected
    return (type(a) is type(b) and a == b) or (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def pick(rng: np.random.Generator, values: Sequence[Any]) -> Any:
    return values[int(rng.integers(len(values)))]
