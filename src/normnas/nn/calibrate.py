"""Recompute BatchNorm running statistics for a (sub)network, and set BN momentum."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

from normnas.nn.batchnorm import is_batchnorm


@dataclass
class _Pooled:
    """Per-channel count, mean and sum of squared deviations of every value seen (Chan et al.)."""

    count: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None
    within_m2: torch.Tensor | None = None  # sum of per-batch M2 around each batch's own mean

    def add(self, count: int, mean: torch.Tensor, m2: torch.Tensor) -> None:
        self.within_m2 = m2.clone() if self.within_m2 is None else self.within_m2 + m2
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        # exact merge of two groups' (n, mean, M2): the pooled statistics of their union
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * count / total)
        self.count = total


def _observe(pooled: _Pooled, bn: nn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: pool the input's statistics, and make `bn` normalize with them."""
    x = args[0].detach()
    dims = [0, *range(2, x.dim())]
    count = x.numel() // x.shape[1]
    # float64: the sums over a whole data set must not lose the small variances
    xd = x.double()
    mean = xd.mean(dims)
    m2 = (xd - mean.view(1, -1, *[1] * (x.dim() - 2))).square().sum(dims)
    pooled.add(count, mean, m2)
    # bn runs in eval mode, so writing this batch's mean and biased variance into its running
    # stats makes it normalize as in training: later layers see what they see when training
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(m2 / count)


Variance = Literal["pooled", "batch_average"]


def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Any],
    num_batches: int | None = None,
    variance: Variance = "pooled",
) -> nn.Module:
    """Reset every BN's running stats and set them to the exact statistics of `batches`.

    `batches` yields tensors or (x, y, ...) tuples; only x is used, on the model's device.
    Each BN (ours, torch's 1d/2d/3d) gets `running_mean` = the mean of all values it saw
    (so the batch-size weighted mean of batch means) and `running_var` = the *pooled*
    unbiased variance of all those values (within-batch plus between-batch spread, unlike
    once-for-all's average of batch variances, which misses the spread of batch means).
    `variance="batch_average"` gives once-for-all's figure instead: the batch-size weighted
    mean of each batch's biased variance around its own mean.
    `num_batches_tracked` becomes the number of batches. During the passes every BN
    normalizes with its batch statistics (as in training) and every other module is in eval
    mode (no dropout). Nothing else is touched (no parameter, other buffer or gradient);
    each submodule's train/eval mode is restored. A BN no batch reaches keeps reset stats.
    """
    if variance not in ("pooled", "batch_average"):
        raise ValueError(f"variance must be 'pooled' or 'batch_average', got {variance!r}")
    if num_batches is not None and num_batches < 1:
        raise ValueError(f"num_batches must be None or >= 1, got {num_batches}")
    bns = [
        m
        for m in dict.fromkeys(model.modules())
        if is_batchnorm(m) and getattr(m, "running_mean", None) is not None
    ]
    pooled = {bn: _Pooled() for bn in bns}
    modes = {m: m.training for m in model.modules()}
    tensors = itertools.chain(model.parameters(), model.buffers())
    device = next(tensors, torch.empty(0)).device
    seen = 0
    with torch.no_grad():
        for bn in bns:
            bn.reset_running_stats()
        hooks = [bn.register_forward_pre_hook(partial(_observe, pooled[bn])) for bn in bns]
        try:
            model.eval()
            for batch in itertools.islice(batches, num_batches):
                model(_input_of(batch).to(device))
                seen += 1
        finally:
            for hook in hooks:
                hook.remove()
            for module, training in modes.items():
                module.training = training
            for bn in bns:
                _write(bn, pooled[bn], seen, variance)
    if seen == 0:
        raise ValueError("batches: no batch given; recalibration needs at least one")
    return model


def _input_of(batch: Any) -> torch.Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"batches: each item must be a tensor or an (x, y) tuple, got {type(batch).__name__}"
        )
    return x


def _write(bn: nn.Module, pooled: _Pooled, batches: int, variance: Variance) -> None:
    if pooled.mean is None or pooled.m2 is None or pooled.within_m2 is None:
        bn.reset_running_stats()
        return
    if variance == "batch_average":
        var = pooled.within_m2 / pooled.count
    else:
        # unbiased like torch's running_var; one value alone has no spread to correct
        var = pooled.m2 / max(pooled.count - 1, 1)
    bn.running_mean.copy_(pooled.mean)
    bn.running_var.copy_(var)
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.fill_(batches)


def set_bn_momentum(model: nn.Module, momentum: float | None) -> nn.Module:
    """Set `momentum` (None: cumulative average) on every BN of `model`; returns `model`."""
    if momentum is not None and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be None or in [0, 1], got {momentum!r}")
    for module in model.modules():
        if is_batchnorm(module):
            module.momentum = momentum
    return model
