"""The SearchSpace protocol every space implements and every strategy relies on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from torch import nn

Arch = Any  # each space's own immutable, hashable architecture value


@runtime_checkable
class SearchSpace(Protocol):
    """Encode, sample, mutate and build architectures.

    Parameters are plain named Optuna parameters so any Optuna sampler, the storage and the
    dashboard see them. The built-in cell and macro spaces suggest the *same fixed set* of
    parameters on every trial: custom samplers can then propose a whole architecture at
    once through `to_params`. A space with conditional parameters (LayerSpace: a layer left
    out records no choices) suggests only the active ones; its `to_params` returns those,
    its `from_params` ignores inactive names and refuses a missing active one, and
    `distributions` lists every name any architecture may use.
    """

    name: str

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every parameter `suggest` asks for, with its Optuna distribution."""
        ...

    def suggest(self, trial: optuna.Trial) -> Arch:
        """Define-by-run: ask the trial for every parameter and return the architecture."""
        ...

    def from_params(self, params: Mapping[str, Any]) -> Arch: ...

    def to_params(self, arch: Arch) -> dict[str, Any]:
        """Inverse of `from_params`: `from_params(to_params(a)) == a`."""
        ...

    def sample(self, rng: np.random.Generator) -> Arch: ...

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """Change exactly one choice; never return `arch` itself."""
        ...

    def neighbors(self, arch: Arch) -> list[Arch]:
        """Every architecture one choice away."""
        ...

    def to_str(self, arch: Arch) -> str: ...

    def from_str(self, text: str) -> Arch: ...

    def canonical(self, arch: Arch) -> Arch:
        """One representative per class of architectures computing the same function."""
        ...

    def build(self, arch: Arch, num_classes: int = 10, in_channels: int = 3) -> nn.Module: ...


def space_size(space: Any) -> int | None:
    """How many distinct architectures (classes under `canonical`) `space` holds, when it
    can count them cheaply: its `size()` (the built-in spaces but the recipe's, which has
    continuous fields), else its `len()`; None for a space that cannot say."""
    size = getattr(space, "size", None)
    if callable(size):
        return int(size())
    return len(space) if hasattr(space, "__len__") else None
