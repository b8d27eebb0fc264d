"""BatchNorm diagnostics: γ magnitudes, near-dead channels and running statistics per layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normnas.nn.batchnorm import is_batchnorm


def _summary(values: torch.Tensor | None) -> dict[str, float] | None:
    if values is None:
        return None
    v = values.detach().double()
    return {"mean": v.mean().item(), "min": v.min().item(), "max": v.max().item()}


def bn_report(model: nn.Module, threshold: float = 1e-2) -> list[dict[str, Any]]:
    """One dict per BN layer of `model`, in module order.

    Keys: `name`, `channels`, `mean_abs_gamma`, `low_gamma_share` (share of channels with
    |γ| < threshold: near-dead channels, as network slimming prunes), `running_mean` and
    `running_var` ({"mean", "min", "max"}). Without affine γ the γ keys are None; without
    running statistics the running keys are None.
    """
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    rows = []
    for name, module in model.named_modules():
        if not is_batchnorm(module):
            continue
        gamma = module.weight.detach().abs() if module.weight is not None else None
        rows.append(
            {
                "name": name,
                "channels": module.num_features,
                "mean_abs_gamma": gamma.mean().item() if gamma is not None else None,
                "low_gamma_share": (gamma < threshold).double().mean().item()
                if gamma is not None
                else None,
                "running_mean": _summary(module.running_mean),
                "running_var": _summary(module.running_var),
            }
        )
    return rows
