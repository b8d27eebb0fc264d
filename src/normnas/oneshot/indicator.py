"""The BN-scale indicator of BN-NAS (Chen et al., ICCV 2021): rank sub-networks by |gamma|.

BN-NAS trains a supernet whose convolution weights stay fixed after a short warm-up and
only the BN affine parameters learn; the scale |gamma| of the BN closing an op then says
how much that op matters, and a sub-network's score is the sum over its layers of the
mean |gamma| of its chosen op's last BN. Scoring needs no data and costs microseconds.

Our choice of the warm-up: `warmup_epochs` of ordinary SPOS training of every weight
(BN-NAS's warm-up trains the whole supernet briefly so the fixed convolutions are not
random), then `bn_epochs` of SPOS training of the BN gamma/beta only, both with the same
recipe (`TrainConfig`; the schedule restarts for the BN phase).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from normnas.data.split import DataBundle
from normnas.oneshot.base import Supernet
from normnas.oneshot.training import Sampling, SupernetTrainResult, train_supernet
from normnas.train.config import TrainConfig


def train_bn_indicator(
    supernet: Supernet,
    data: DataBundle,
    warmup_epochs: int,
    bn_epochs: int,
    config: TrainConfig | None = None,
    sampling: Sampling = "uniform",
    checkpoint: str | Path | None = None,
) -> tuple[SupernetTrainResult | None, SupernetTrainResult]:
    """Warm up every weight for `warmup_epochs` (0: none), then train only BN affine
    parameters for `bn_epochs`. With `checkpoint` P, the phases checkpoint to `P.warmup`
    and `P.bn` and resume from them. Returns (warm-up result or None, BN result)."""
    if warmup_epochs < 0 or bn_epochs < 1:
        raise ValueError(
            f"need warmup_epochs >= 0 and bn_epochs >= 1, got {warmup_epochs}, {bn_epochs}"
        )
    config = config or TrainConfig()
    path = None if checkpoint is None else Path(checkpoint)
    warm = None
    if warmup_epochs:
        warm_config = dataclasses.replace(
            config, epochs=warmup_epochs, warmup_epochs=min(config.warmup_epochs, warmup_epochs)
        )
        ckpt = None if path is None else path.with_name(path.name + ".warmup")
        warm = train_supernet(supernet, data, warm_config, sampling, ckpt, trainable="all")
        if warm.status != "ok":
            return warm, warm
    bn_config = dataclasses.replace(
        config, epochs=bn_epochs, warmup_epochs=min(config.warmup_epochs, bn_epochs)
    )
    ckpt = None if path is None else path.with_name(path.name + ".bn")
    return warm, train_supernet(supernet, data, bn_config, sampling, ckpt, trainable="bn")


def bn_score(supernet: Supernet, arch: Any) -> float:
    """Sum over the path's edges/blocks of the mean |gamma| of each one's indicator BNs.

    An edge whose op has no BN (NB201: none, skip_connect, avg_pool_3x3) contributes 0:
    BN-NAS defines the score only for ops closed by a BN, and a parameter-free op has no
    learned scale to show its importance. Raises ValueError on a BN without affine.
    """
    total = 0.0
    with torch.no_grad():
        for norms in supernet.indicator_norms(arch):
            if not norms:
                continue
            gammas = []
            for bn in norms:
                weight = getattr(bn, "weight", None)
                if weight is None:
                    raise ValueError("bn_score needs BN affine parameters (a supernet with affine)")
                gammas.append(weight.detach().abs().flatten())
            total += float(torch.cat(gammas).double().mean())
    return total
