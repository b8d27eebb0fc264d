"""Proxies by name, scoring one network with several of them, and the rank vote."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.stats import rankdata
from torch import nn

from normnas.errors import ConfigError
from normnas.proxies import measures
from normnas.proxies._common import Batch


class Proxy(Protocol):
    def __call__(self, model: nn.Module, batch: Batch, seed: int = 0) -> float: ...


PROXIES: dict[str, Proxy] = {
    "grad_norm": measures.grad_norm,
    "snip": measures.snip,
    "grasp": measures.grasp,
    "fisher": measures.fisher,
    "synflow": measures.synflow,
    "jacov": measures.jacov,
    "naswot": measures.naswot,
    "zen": measures.zen,
    "zico": measures.zico,
    "meco": measures.meco,
    "swap": measures.swap,
    "swap_reg": measures.swap,  # scored as swap, then regularized by score_all (SizePrior)
    "params": measures.params,
    "flops": measures.flops,
}
BASELINES = ("params", "flops")
# the vote by default: the three of the first warm-up and, as issue 24 asked, MeCo and the
# regularized SWAP (the two best ranked in their papers); measured in BENCHMARKS.md
DEFAULT_PROXIES = ("synflow", "jacov", "naswot", "meco", "swap_reg")
SIZED = ("swap_reg",)  # proxies that need a SizePrior (the model size the search aims at)


@dataclass(frozen=True)
class SizePrior:
    """mu (thousands of parameters) and sigma (thousands squared) of the regularized SWAP.

    The paper leaves both to the user as the model size wanted. Without one, `of_sizes`
    aims at the largest network of a sample of the space (a user with no size limit wants
    the most capable cell) with the sample's variance as the width, so a network one
    standard deviation below the largest keeps e^-1 of its SWAP score.
    """

    mu_k: float
    sigma: float

    @classmethod
    def of_sizes(cls, n_params: Sequence[float]) -> SizePrior:
        k = np.asarray(n_params, dtype=np.float64) / 1e3
        if len(k) < 2:
            raise ConfigError("swap_reg: the size prior needs the sizes of at least 2 networks")
        var = float(k.var())
        return cls(float(k.max()), var if var > 0 else 1.0)

    @classmethod
    def of_space(cls, space: Any, n: int = 64, seed: int = 0, **build: Any) -> SizePrior:
        """From `n` random architectures of `space` built untrained (parameters only)."""
        rng = np.random.default_rng([seed, 0x517E])
        sizes = [
            sum(p.numel() for p in space.build(space.sample(rng), **build).parameters())
            for _ in range(n)
        ]
        return cls.of_sizes(sizes)

    def apply(self, swap_score: float, n_params: float) -> float:
        return measures.regularized_swap(swap_score, n_params, self.mu_k, self.sigma)


def get_proxy(name: str) -> Proxy:
    """The proxy called `name`; a one-line ConfigError listing the valid names otherwise."""
    try:
        return PROXIES[name]
    except KeyError:
        raise ConfigError(f"--proxy: unknown proxy {name!r}; valid: {', '.join(PROXIES)}") from None


def parse_proxies(names: str | Iterable[str]) -> tuple[str, ...]:
    """`"synflow,jacov"` or a sequence of names: checked, stripped, duplicates dropped."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        name = str(raw).strip()
        if not name:
            continue
        get_proxy(name)
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"--proxy: expected one or more of {', '.join(PROXIES)}, got none")
    return tuple(out)


def score_all(
    model: nn.Module,
    batch: Batch,
    names: Sequence[str],
    seed: int = 0,
    size_prior: SizePrior | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """(score, seconds) per proxy of `names` for one network on one batch.

    `swap_reg` needs `size_prior`; with `swap` also named, the patterns are counted once
    (swap_reg is then charged only the regularization's own time).
    """
    scores: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name in names:
        fn = get_proxy(name)
        start = time.perf_counter()
        if name in SIZED:
            if size_prior is None:
                raise ConfigError(f"{name}: needs a size prior (SizePrior) of the space")
            raw = scores["swap"] if "swap" in scores else float(fn(model, batch, seed=seed))
            n_params = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
            scores[name] = size_prior.apply(raw, n_params)
        else:
            scores[name] = float(fn(model, batch, seed=seed))
        seconds[name] = time.perf_counter() - start
    return scores, seconds


def ranks01(values: Sequence[float]) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share their mean rank); NaN and -inf rank lowest."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), -np.inf, v)
    if len(v) == 1:
        return np.array([0.5])
    return (rankdata(v, method="average") - 1.0) / (len(v) - 1.0)


def vote(scores: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Rank average of several proxies over one population of architectures (higher = better).

    `scores[name][i]` is proxy `name` on architecture i; each proxy's scores become ranks in
    [0, 1] and the vote is their mean, so no proxy's scale dominates.
    """
    if not scores:
        raise ConfigError("vote: expected the scores of at least one proxy")
    lengths = {len(v) for v in scores.values()}
    if len(lengths) != 1:
        raise ValueError(f"vote: every proxy must score the same architectures, got {lengths}")
    return np.mean([ranks01(v) for v in scores.values()], axis=0)


def signed_log(value: float) -> float:
    """sign(v) log(1 + |v|): monotone, so ranks are kept, but heavy tails (synflow, params
    span decades) no longer dominate a mean or a standard deviation."""
    return math.copysign(math.log1p(abs(value)), value)
