"""ProxyEvaluator: a judge that scores an untrained network with zero-cost proxies.

One proxy: `accuracy` is its raw score. Several: `accuracy` is the sum over proxies of the
z-score of `signed_log(score)` against a fixed reference sample of `reference_size` random
architectures, scored once on the first query (its time is charged to that query). A vote
(rank average) needs a population; the z-sum against a fixed reference makes one
architecture's score comparable across queries, never saturates at the top (a rank within
a small reference would give every arch better than all of it the same score), and the
signed log keeps heavy-tailed proxies (synflow spans tens of decades) from dominating.
A non-finite proxy score (an undefined proxy, e.g. a constant network) counts Z_FLOOR.
`extra["accuracy_is"]` says what `accuracy` holds; it is not a fraction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from normnas.errors import ConfigError
from normnas.errors import error_line as one_line  # a failed trial's record
from normnas.proxies._common import Batch
from normnas.proxies.registry import (
    DEFAULT_PROXIES,
    SIZED,
    SizePrior,
    parse_proxies,
    score_all,
    signed_log,
)
from normnas.search.result import ReportFn, TrialResult
from normnas.spaces.base import Arch, SearchSpace

Z_FLOOR = -10.0  # the z-score of an undefined (non-finite) proxy value: worse than any seen


def proxy_batch(data: Any, batch_size: int, seed: int) -> Batch:
    """A fixed batch of the training split: `batch_size` samples drawn without replacement."""
    split = data.train
    if batch_size < 2:
        raise ConfigError(f"batch_size: expected an integer >= 2, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split), generator=generator)[: min(batch_size, len(split))]
    return split.x[idx], split.y[idx]


def distinct_sample(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Arch]:
    """Up to `n` random architectures of distinct canonical classes, in drawing order."""
    seen: set[str] = set()
    out: list[Arch] = []
    for _ in range(max(50 * n, 1000)):
        if len(out) >= n:
            break
        arch = space.sample(rng)
        key = space.to_str(space.canonical(arch))
        if key not in seen:
            seen.add(key)
            out.append(arch)
    return out


@dataclass(frozen=True)
class ReferenceScale:
    """Mean and standard deviation of signed_log(score) per proxy over a reference sample."""

    mean: dict[str, float]
    std: dict[str, float]

    @classmethod
    def fit(cls, rows: Sequence[dict[str, float]], names: Sequence[str]) -> ReferenceScale:
        mean: dict[str, float] = {}
        std: dict[str, float] = {}
        for name in names:
            v = np.array([signed_log(r[name]) for r in rows if math.isfinite(r[name])])
            mean[name] = float(v.mean()) if len(v) else 0.0
            s = float(v.std()) if len(v) > 1 else 0.0
            std[name] = s if s > 0 else 1.0  # a constant proxy: a unit scale, no division by 0
        return cls(mean, std)

    def z(self, name: str, value: float) -> float:
        if not math.isfinite(value):
            return Z_FLOOR
        return (signed_log(value) - self.mean[name]) / self.std[name]

    def combine(self, scores: dict[str, float]) -> float:
        return float(sum(self.z(name, scores[name]) for name in self.mean))


class ProxyEvaluator:
    """Score an architecture by zero-cost proxies of its untrained network (see module doc).

    The network is `space.build(arch, num_classes, in_channels)` initialised with `seed`;
    every proxy sees the same fixed batch of `batch_size` training samples drawn with
    `seed`. `cost_s` is the measured wall time of the query. `fidelity` is ignored.
    """

    def __init__(
        self,
        space: SearchSpace,
        data: Any,  # normnas.data.DataBundle
        proxies: str | Sequence[str] = DEFAULT_PROXIES,
        batch_size: int = 64,
        seed: int = 0,
        reference_size: int = 16,
        device: str = "cpu",
        latency_device: str = "cpu",
    ) -> None:
        self.space, self.data = space, data
        self.proxies = parse_proxies(proxies)
        if reference_size < 2:
            raise ConfigError(f"reference_size: expected an integer >= 2, got {reference_size}")
        self.batch_size, self.seed, self.reference_size = batch_size, seed, reference_size
        self.device, self.latency_device = device, latency_device
        self.batch = proxy_batch(data, batch_size, seed)
        self.input_shape = (data.in_channels, *data.image_size)  # (C, H, W) or (C, T)
        self.scale: ReferenceScale | None = None
        self._size_prior: SizePrior | None = None

    @property
    def accuracy_is(self) -> str:
        if len(self.proxies) == 1:
            return f"proxy:{self.proxies[0]}"
        return f"proxy_z_sum:{','.join(self.proxies)}"

    def build(self, arch: Arch) -> nn.Module:
        torch.manual_seed(self.seed)  # the same initial weights for the same arch and seed
        model = self.space.build(arch, self.data.num_classes, self.data.in_channels)
        return model.to(self.device)

    def scores(self, arch: Arch, model: nn.Module | None = None) -> dict[str, float]:
        """Raw score of every proxy of this evaluator for `arch`."""
        model = self.build(arch) if model is None else model
        return score_all(model, self.batch, self.proxies, self.seed, self.size_prior())[0]

    def size_prior(self) -> SizePrior | None:
        """The regularized SWAP's size prior, from 64 random networks of the space (built,
        never run: well under a second), when a proxy needs one."""
        if self._size_prior is None and any(p in SIZED for p in self.proxies):
            self._size_prior = SizePrior.of_space(
                self.space,
                seed=self.seed,
                num_classes=self.data.num_classes,
                in_channels=self.data.in_channels,
            )
        return self._size_prior

    def reference(self) -> ReferenceScale:
        """The reference scale, scored on first use (random archs drawn with `seed`)."""
        if self.scale is None:
            archs = distinct_sample(
                self.space, self.reference_size, np.random.default_rng([self.seed, 1])
            )
            self.scale = ReferenceScale.fit([self.scores(a) for a in archs], self.proxies)
        return self.scale

    def cost_metrics(
        self, arch: Arch, names: Collection[str] | None = None, model: nn.Module | None = None
    ) -> dict[str, float]:
        """params, flops, macs and latency_ms (those in `names`) of the untrained network."""
        from normnas.train.cost import network_costs

        model = self.build(arch) if model is None else model
        return network_costs(model, self.input_shape, names, self.latency_device)

    def evaluate(
        self,
        arch: Arch,
        fidelity: int | None = None,
        report: ReportFn | None = None,
        time_limit_s: float | None = None,
    ) -> TrialResult:
        start = time.perf_counter()
        reference_s = 0.0
        try:
            if len(self.proxies) > 1 and self.scale is None:
                self.reference()
                reference_s = time.perf_counter() - start
            model = self.build(arch)
            scores = self.scores(arch, model)
            value = scores[self.proxies[0]] if self.scale is None else self.scale.combine(scores)
            n_params = sum(p.numel() for p in model.parameters())
        except Exception as exc:
            return TrialResult(
                status="failed", error=one_line(exc), cost_s=time.perf_counter() - start
            )
        extra: dict[str, Any] = {
            "judge": "proxy",
            "accuracy_is": self.accuracy_is,
            "proxy_scores": scores,
            "proxy_batch_size": len(self.batch[0]),
            "seed": self.seed,
        }
        if reference_s:
            extra["reference_s"] = reference_s
        return TrialResult(
            status="ok",
            accuracy=float(value),
            params=n_params,
            cost_s=time.perf_counter() - start,
            extra=extra,
        )
