"""JointSpace: one architecture and one training recipe per trial."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from torch import nn

from normnas.spaces.base import SearchSpace

ARCH_PREFIX = "arch."
RECIPE_PREFIX = "recipe."
_SEPARATOR = " @ "


def suggest_distribution(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """Ask `trial` for parameter `name` with distribution `dist` through the public API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    raise TypeError(f"cannot suggest a {type(dist).__name__} for {name!r}")


class JointSpace:
    """Search an architecture and its training recipe at once.

    An architecture of this space is the pair `(arch, recipe)`. Optuna parameters are those
    of the two spaces prefixed `arch.` and `recipe.` (e.g. `arch.edge_1<-0`,
    `recipe.lr`). `to_str` joins the two strings with ` @ `. `mutate` changes one choice of
    one part (the part drawn 50/50 among those that can move); `build` builds the arch part.
    """

    def __init__(self, arch_space: SearchSpace, recipe_space: SearchSpace) -> None:
        self.arch_space = arch_space
        self.recipe_space = recipe_space
        self.name = f"{arch_space.name}+{recipe_space.name}"
        self._parts = ((ARCH_PREFIX, arch_space), (RECIPE_PREFIX, recipe_space))

    def distributions(self) -> dict[str, BaseDistribution]:
        return {
            prefix + name: dist
            for prefix, space in self._parts
            for name, dist in space.distributions().items()
        }

    def suggest(self, trial: optuna.Trial) -> tuple[Any, Any]:
        params = {
            name: suggest_distribution(trial, name, dist)
            for name, dist in self.distributions().items()
        }
        return self.from_params(params)

    def from_params(self, params: Mapping[str, Any]) -> tuple[Any, Any]:
        known = (ARCH_PREFIX, RECIPE_PREFIX)
        stray = [k for k in params if not k.startswith(known)]
        if stray:
            raise ValueError(
                f"{self.name}: parameter {stray[0]!r} has neither prefix {list(known)}"
            )
        return tuple(  # type: ignore[return-value]
            space.from_params(
                {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
            )
            for prefix, space in self._parts
        )

    def to_params(self, arch: tuple[Any, Any]) -> dict[str, Any]:
        pair = self._pair(arch)
        return {
            prefix + k: v
            for (prefix, space), part in zip(self._parts, pair, strict=True)
            for k, v in space.to_params(part).items()
        }

    def to_str(self, arch: tuple[Any, Any]) -> str:
        a, r = self._pair(arch)
        return f"{self.arch_space.to_str(a)}{_SEPARATOR}{self.recipe_space.to_str(r)}"

    def from_str(self, text: str) -> tuple[Any, Any]:
        a, sep, r = text.rpartition(_SEPARATOR)
        if not sep:
            raise ValueError(f"{self.name}: expected 'ARCH{_SEPARATOR}RECIPE', got {text!r}")
        return self.arch_space.from_str(a), self.recipe_space.from_str(r)

    def sample(self, rng: np.random.Generator) -> tuple[Any, Any]:
        return self.arch_space.sample(rng), self.recipe_space.sample(rng)

    def mutate(self, arch: tuple[Any, Any], rng: np.random.Generator) -> tuple[Any, Any]:
        a, r = self._pair(arch)
        order = [0, 1] if rng.random() < 0.5 else [1, 0]
        errors = []
        for part in order:
            try:
                if part == 0:
                    return self.arch_space.mutate(a, rng), r
                return a, self.recipe_space.mutate(r, rng)
            except ValueError as err:  # that part has nothing to change
                errors.append(str(err))
        raise ValueError(f"{self.name}: nothing to mutate ({'; '.join(errors)})")

    def neighbors(self, arch: tuple[Any, Any]) -> list[tuple[Any, Any]]:
        a, r = self._pair(arch)
        return [(n, r) for n in self.arch_space.neighbors(a)] + [
            (a, n) for n in self.recipe_space.neighbors(r)
        ]

    def canonical(self, arch: tuple[Any, Any]) -> tuple[Any, Any]:
        a, r = self._pair(arch)
        return self.arch_space.canonical(a), self.recipe_space.canonical(r)

    def build(
        self, arch: tuple[Any, Any], num_classes: int = 10, in_channels: int = 3, **kwargs: Any
    ) -> nn.Module:
        """The network of the arch part (the recipe says how to train it, not what it is)."""
        return self.arch_space.build(self._pair(arch)[0], num_classes, in_channels, **kwargs)

    def _pair(self, arch: Any) -> tuple[Any, Any]:
        if not isinstance(arch, tuple) or len(arch) != 2:
            raise ValueError(f"{self.name}: an architecture is an (arch, recipe) pair")
        return arch[0], arch[1]
