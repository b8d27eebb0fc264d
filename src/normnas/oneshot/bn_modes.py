"""How a sub-network of a supernet gets its BatchNorm statistics when it is evaluated.

- `running`: the supernet's running statistics as they are: averages over every path
  sampled during training, so the wrong statistics for any one sub-network (the naive
  default of many tools).
- `batch`: every BN normalizes with the statistics of the evaluation batch itself (no
  running statistics are read or written); the result depends on the evaluation batch size.
- `recalibrate`: the path's BN statistics are reset and recomputed exactly on N training
  batches (`normnas.nn.recalibrate_bn`: pooled mean and unbiased variance of every value
  each BN sees), then the sub-network is evaluated; afterwards the supernet's previous
  statistics are put back, so judging one sub-network never changes another's.

GroupNorm, LayerNorm and InstanceNorm keep no running statistics and compute the same in
all three modes: only BatchNorm needs any of this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from normnas.data.split import Split
from normnas.nn import recalibrate_bn
from normnas.nn.batchnorm import is_batchnorm
from normnas.oneshot.base import Supernet

BNMode = Literal["running", "batch", "recalibrate"]
BN_MODES: tuple[str, ...] = ("running", "batch", "recalibrate")
DEFAULT_CALIB_BATCHES = 16  # see BENCHMARKS.md: the N the benchmark's table supports
DEFAULT_CALIB_BATCH_SIZE = 128


@dataclass
class SubnetScore:
    accuracy: float  # fraction in [0, 1]
    loss: float  # mean cross-entropy
    n: int


def _batchnorms(modules: Sequence[nn.Module]) -> list[nn.Module]:
    found = (m for module in modules for m in module.modules())
    return [m for m in dict.fromkeys(found) if is_batchnorm(m) and m.running_mean is not None]


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every BN buffer of `model` (running mean/var, batches tracked), by name."""
    names = {m: n for n, m in model.named_modules()}
    return {
        f"{names[bn]}.{b}": getattr(bn, b).clone()
        for bn in _batchnorms([model])
        for b in ("running_mean", "running_var", "num_batches_tracked")
        if getattr(bn, b, None) is not None
    }


@contextlib.contextmanager
def bn_stats_restored(model: nn.Module) -> Iterator[None]:
    """Inside the block BN statistics may change; on exit every BN buffer is as before."""
    saved = [
        (buf, buf.clone())
        for bn in _batchnorms([model])
        for buf in (bn.running_mean, bn.running_var, bn.num_batches_tracked)
        if buf is not None
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


@contextlib.contextmanager
def batch_statistics(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Inside the block the BNs of `modules` normalize with batch statistics, even in eval
    mode, and leave their running statistics untouched (torch reads and updates none when
    both running buffers are None)."""
    bns = _batchnorms(modules)
    saved = [(bn, bn.running_mean, bn.running_var) for bn in bns]
    try:
        for bn in bns:
            bn.running_mean = None
            bn.running_var = None
        yield
    finally:
        for bn, mean, var in saved:
            bn.running_mean = mean
            bn.running_var = var


def calibration_batches(
    split: Split,
    num_batches: int,
    batch_size: int = DEFAULT_CALIB_BATCH_SIZE,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[torch.Tensor]:
    """`num_batches` fixed input batches of `split` (shuffled by `seed`, never augmented):
    the same for every sub-network, so their statistics differ only by their paths."""
    if num_batches < 1:
        raise ValueError(f"calib_batches must be >= 1, got {num_batches}")
    x, _ = split.on(device)
    perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    out = []
    for start in range(0, min(len(split), num_batches * batch_size), batch_size):
        out.append(x[perm[start : start + batch_size].to(x.device)])
    return out


@contextlib.contextmanager
def recalibrated(
    supernet: Supernet, arch: Any, batches: Sequence[torch.Tensor]
) -> Iterator[nn.Module]:
    """Inside the block `arch` is active and its path's BN statistics are exactly those
    `recalibrate_bn` computes on `batches`; on exit every BN buffer of the supernet is
    restored (those of other paths are reset during the block and put back)."""
    model: nn.Module = supernet  # type: ignore[assignment]
    with bn_stats_restored(model):
        supernet.set_arch(arch)
        recalibrate_bn(model, batches)
        yield model


@torch.no_grad()
def _score(model: nn.Module, split: Split, batch_size: int, device: torch.device) -> SubnetScore:
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for x, y in split.batches(batch_size, shuffle=False, device=device):
        out = model(x).float()
        loss_sum += F.cross_entropy(out, y, reduction="sum").double()
        correct += (out.argmax(1) == y).sum()
    n = len(split)
    return SubnetScore(accuracy=int(correct) / max(n, 1), loss=float(loss_sum) / max(n, 1), n=n)


def evaluate_subnet(
    supernet: Supernet,
    arch: Any,
    split: Split,
    bn_mode: BNMode = "recalibrate",
    calib_batches: int | Sequence[torch.Tensor] = DEFAULT_CALIB_BATCHES,
    calib_split: Split | None = None,
    batch_size: int = 256,
    calib_batch_size: int = DEFAULT_CALIB_BATCH_SIZE,
    seed: int = 0,
) -> SubnetScore:
    """Accuracy and loss of `arch`'s sub-network on `split` with the supernet's weights.

    `calib_batches` is a number of batches of `calib_split` (the training split; drawn by
    `calibration_batches` with `seed`) or the input batches themselves. The supernet is left
    in eval mode with `arch` active and all its statistics as they were.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {', '.join(BN_MODES)}, got {bn_mode!r}")
    model: nn.Module = supernet  # type: ignore[assignment]
    device = next(model.parameters()).device
    model.eval()
    supernet.set_arch(arch)
    if bn_mode == "running":
        return _score(model, split, batch_size, device)
    if bn_mode == "batch":
        with batch_statistics(supernet.path_modules(arch)):
            return _score(model, split, batch_size, device)
    if isinstance(calib_batches, int):
        if calib_split is None:
            raise ValueError("bn_mode='recalibrate' needs calib_split (the training split)")
        batches = calibration_batches(calib_split, calib_batches, calib_batch_size, seed, device)
    else:
        batches = list(calib_batches)
    with recalibrated(supernet, arch, batches):
        return _score(model, split, batch_size, device)
