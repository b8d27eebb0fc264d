"""What every proxy shares: a private working copy of the model, seeding, layer selection."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs N x C x H x W, integer labels N)

# the layers whose weights the gradient-based proxies of Abdelfattah et al. 2021 sum over
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
# activations whose input sign is a "linear region" code (NASWOT, SWAP); ReLU-like only
RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def working_copy(model: nn.Module, batch: Batch) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A deep copy of `model` in train mode with no gradients, and the batch on its device.

    Every proxy works on such a copy: the caller's weights, BN running statistics, gradients
    and train/eval flags are untouched by construction, whatever the proxy does (re-init,
    |w|, BN removed, forward passes in train mode that would update running statistics).
    """
    net = copy.deepcopy(model)
    net.train()
    for p in net.parameters():
        p.grad = None
        p.requires_grad_(True)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    x, y = batch
    return net, x.to(device), y.to(device)


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's RNGs for the block and restore the caller's RNG state afterwards."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def prunable(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, PRUNABLE)]


def finite(value: float) -> float:
    """NaN (no signal: e.g. a constant network's correlations) counts as the worst score."""
    return -math.inf if math.isnan(value) else float(value)


def remove_batch_norm(net: nn.Module) -> nn.Module:
    """Replace every BatchNorm of `net` (in place) by an identity: a data-free network."""
    for name, child in net.named_children():
        if isinstance(child, BATCH_NORMS):
            setattr(net, name, nn.Identity())
        else:
            remove_batch_norm(child)
    return net
