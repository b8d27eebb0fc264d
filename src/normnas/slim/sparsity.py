"""The L1 penalty `sparsity · Σ|γ|` on every BatchNorm scale, as network slimming trains it.

Network slimming (Liu et al., ICCV 2017) adds the subgradient `sparsity · sign(γ)` to each
BN scale's gradient after the backward pass. Here a gradient hook on each γ adds it while
the gradient is computed, so `normnas.train.fit` trains with the penalty unchanged (its
optimizer puts no weight decay on norm scales by default, so the L1 term is the only
pull towards zero). The hooks are removed when the `with` block ends.

With CUDA float16 autocast the loss is scaled before backward and the hook would add an
unscaled term: `bn_sparsity` is for float32 or bfloat16 training (what `fit` uses on CPU
and on GPUs with bfloat16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def batchnorm_scales(model: nn.Module) -> list[nn.Parameter]:
    """The γ of every torch BatchNorm layer of `model` that has one."""
    return [
        m.weight
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and m.weight is not None
    ]


@contextlib.contextmanager
def bn_sparsity(model: nn.Module, sparsity: float) -> Iterator[int]:
    """Within the block, every backward pass adds `sparsity · sign(γ)` to each BN scale's
    gradient; yields how many BN layers are penalized. `sparsity` 0 adds nothing."""
    if not sparsity >= 0:
        raise ValueError(f"--sparsity must be >= 0, got {sparsity!r}")
    scales = batchnorm_scales(model) if sparsity > 0 else []

    def hook_for(gamma: nn.Parameter) -> object:
        def add_l1(grad: torch.Tensor) -> torch.Tensor:
            return grad + sparsity * torch.sign(gamma.detach())

        return add_l1

    handles = [g.register_hook(hook_for(g)) for g in scales]  # type: ignore[arg-type]
    try:
        yield len(scales)
    finally:
        for h in handles:
            h.remove()
