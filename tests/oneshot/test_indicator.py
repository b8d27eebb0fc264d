"""BN-NAS's BN-scale indicator: the score by hand, and BN-only training after a warm-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from normnas.data.split import DataBundle
from normnas.oneshot import NB201Supernet, bn_score, train_bn_indicator
from normnas.spaces import NB201Space
from normnas.spaces.nb201 import OPS
from normnas.train import TrainConfig


def _hand_built() -> tuple[NB201Supernet, dict[tuple[int, int, str], float]]:
    """Supernet (N=1: 3 cells) whose op BN gammas are set: channel c of the BN of op `op`
    on edge e of cell i is (-1)^c * (i + 1) * (e + 1) * k_op * (c + 1) / 10."""
    net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    k = {"nor_conv_1x1": 1.0, "nor_conv_3x3": 3.0}
    means: dict[tuple[int, int, str], float] = {}
    cells = [c for c in net.cells if hasattr(c, "edges")]
    with torch.no_grad():
        for i, cell in enumerate(cells):
            for e in range(6):
                for op, factor in k.items():
                    bn = cell.edges[e][op][2]
                    n = bn.num_features
                    values = [
                        (-1) ** c * (i + 1) * (e + 1) * factor * (c + 1) / 10 for c in range(n)
                    ]
                    bn.weight.copy_(torch.tensor(values))
                    means[(i, e, op)] = sum(abs(v) for v in values) / n
    return net, means


def test_bn_score_equals_hand_computation() -> None:
    net, _ = _hand_built()
    arch = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none", "avg_pool_3x3", "nor_conv_3x3")
    # by hand: mean |gamma| of channels c=0..n-1 with n = 4, 8, 16 in the 3 cells
    # = (i+1)(e+1) k (n+1)/20; conv edges: e=0 (k=3), e=2 (k=1), e=5 (k=3)
    expected = sum(
        (i + 1) * (e + 1) * k * (n + 1) / 20
        for i, n in enumerate((4, 8, 16))
        for e, k in ((0, 3.0), (2, 1.0), (5, 3.0))
    )
    assert bn_score(net, arch) == pytest.approx(expected, rel=1e-6)
    assert bn_score(net, ("none",) * 6) == 0.0
    assert bn_score(net, ("avg_pool_3x3",) * 3 + ("skip_connect",) * 3) == 0.0


def test_bn_score_needs_affine() -> None:
    net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1, affine=False)
    with pytest.raises(ValueError, match="affine"):
        bn_score(net, ("nor_conv_3x3",) * 6)


def test_bn_phase_trains_only_bn_affine_after_a_full_warmup(
    data: DataBundle, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    init = {k: v.clone() for k, v in net.named_parameters()}
    config = TrainConfig(epochs=1, batch_size=96, lr=0.1, seed=2)
    warm, bn = train_bn_indicator(net, data, 1, 1, config, "fair", tmp_path / "ind.pt")
    assert warm is not None and warm.status == bn.status == "ok"
    warm_state = torch.load(tmp_path / "ind.pt.warmup", weights_only=True)["model"]
    final = dict(net.named_parameters())
    conv = "cells.0.edges.3.nor_conv_3x3.1.weight"
    gamma = "cells.0.edges.3.nor_conv_3x3.2.weight"
    assert not torch.equal(warm_state[conv], init[conv])  # the warm-up trains convs
    modules = dict(net.named_modules())
    for key, value in final.items():
        if not isinstance(modules[key.rsplit(".", 1)[0]], torch.nn.BatchNorm2d):
            assert torch.equal(value, warm_state[key]), key  # frozen in the BN phase
    assert not torch.equal(final[gamma], warm_state[gamma])
    assert all(p.requires_grad for p in net.parameters())  # flags restored
    scores = {op: bn_score(net, (op,) * 6) for op in OPS}
    assert scores["nor_conv_3x3"] > 0 and scores["none"] == 0
