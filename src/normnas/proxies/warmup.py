"""Proxy warm-up: score N random architectures, start a strategy from the best-scored ones.

`proxy_warmup` scores N random architectures of distinct canonical classes with the
proxies and ranks them by the vote (rank average over those N; with one proxy, its own
ranking). `seed_study` enqueues the top k into an Optuna study, so the runner evaluates
them first with the real evaluator and any strategy that reads the study's history starts
from them: evolution's first population, additive's start (its random start replaced).
`seed_count(sampler)` is that k: the size of the strategy's own start. The caller charges
the warm-up's measured time to the search budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch

from normnas.errors import ConfigError
from normnas.proxies.evaluator import distinct_sample, proxy_batch
from normnas.proxies.registry import (
    DEFAULT_PROXIES,
    SIZED,
    SizePrior,
    parse_proxies,
    score_all,
    vote,
)
from normnas.spaces.base import Arch, SearchSpace

WARMUP_ATTR = "proxy_warmup_score"  # user attr of an enqueued trial: its vote in the warm-up
DEFAULT_SEED_COUNT = 10


@dataclass(frozen=True)
class WarmupPick:
    """One warm-up architecture: its vote (higher = better) and the seconds it took."""

    arch: Arch
    score: float
    cost_s: float
    scores: dict[str, float]


def proxy_warmup(
    space: SearchSpace,
    data: Any,  # normnas.data.DataBundle
    n: int,
    proxies: str | Sequence[str] = DEFAULT_PROXIES,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
) -> list[WarmupPick]:
    """Score `n` random distinct architectures; best (highest vote) first.

    Networks are built as `ProxyEvaluator` builds them (initialised with `seed`), on one
    fixed batch; each pick's `cost_s` is its measured build + scoring time.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--proxy-warmup: expected an integer >= 1, got {n!r}")
    names = parse_proxies(proxies)
    batch = proxy_batch(data, batch_size, seed)
    archs = distinct_sample(space, n, np.random.default_rng([seed, 2]))
    prior = (
        SizePrior.of_space(
            space, seed=seed, num_classes=data.num_classes, in_channels=data.in_channels
        )
        if any(p in SIZED for p in names)
        else None
    )
    rows: list[dict[str, float]] = []
    costs: list[float] = []
    for arch in archs:
        start = time.perf_counter()
        torch.manual_seed(seed)
        model = space.build(arch, data.num_classes, data.in_channels).to(device)
        rows.append(score_all(model, batch, names, seed, prior)[0])
        costs.append(time.perf_counter() - start)
    return rank_picks(archs, rows, costs, names)


def rank_picks(
    archs: Sequence[Arch],
    rows: Sequence[dict[str, float]],
    costs: Sequence[float],
    names: Sequence[str],
) -> list[WarmupPick]:
    """Picks sorted by the vote over `rows` (ties: drawing order), best first."""
    votes = vote({name: [r[name] for r in rows] for name in names})
    order = sorted(range(len(archs)), key=lambda i: (-votes[i], i))
    return [WarmupPick(archs[i], float(votes[i]), float(costs[i]), dict(rows[i])) for i in order]


def seed_count(sampler: Any) -> int:
    """How many warm-up picks start `sampler`: its population, else its random start."""
    for attr in ("population_size", "n_startup"):
        value = getattr(sampler, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_SEED_COUNT


def seed_study(
    study: optuna.Study, space: SearchSpace, picks: Sequence[WarmupPick], k: int
) -> list[Arch]:
    """Enqueue the best `k` picks (one per canonical class) to be evaluated first."""
    chosen: list[Arch] = []
    for pick in picks[:k]:
        study.enqueue_trial(
            space.to_params(pick.arch),
            user_attrs={WARMUP_ATTR: pick.score},
            skip_if_exists=True,
        )
        chosen.append(pick.arch)
    return chosen
