"""Parameters, multiply-adds and operation counts (against hand counts), latency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normnas.spaces._nb201_model import InferCell, NB201Network
from normnas.train import (
    Latency,
    OpCounts,
    count_flops,
    count_macs,
    count_ops,
    count_params,
    measure_latency,
)


def test_count_params_trainable_only() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(5, 2))
    # conv 3*8*9 + 8, bn 8 + 8, linear 5*2 + 2
    assert count_params(model) == 216 + 8 + 16 + 12
    model[2].weight.requires_grad_(False)
    assert count_params(model) == 216 + 8 + 16 + 2


def test_conv_macs_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    # every output (8 x 16 x 16) takes 3 * 3 * 3 multiply-adds; the bias is not counted
    assert count_macs(conv, (3, 16, 16)) == 8 * 16 * 16 * 27
    assert count_flops(conv, (3, 16, 16)) == 8 * 16 * 16 * 27  # a conv is MACs only
    strided = nn.Conv2d(4, 6, 5, stride=2, padding=2, bias=False)  # out 6 x 8 x 8
    assert count_macs(strided, (4, 16, 16)) == 6 * 8 * 8 * 4 * 25
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise: 9 per output
    assert count_macs(grouped, (8, 10, 10)) == 8 * 10 * 10 * 9


def test_linear_and_chain_by_hand() -> None:
    assert count_macs(nn.Linear(64, 10), (64,)) == 640
    assert count_flops(nn.Linear(64, 10), (64,)) == 640
    chain = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 10),
    )  # fmt: skip
    chain.train()
    macs = 4 * 8 * 8 * 9 + 64 * 10
    assert count_macs(chain, (1, 8, 8)) == macs
    # + BN (eval) and ReLU 1 per element of 4x8x8, max pool 2x2 = 4 per output of 4x4x4
    assert count_ops(chain, (1, 8, 8)) == OpCounts(
        macs=macs, pool=4 * 64, norm=256, activation=256, elementwise=0
    )
    assert count_flops(chain, (1, 8, 8)) == macs + 256 + 256 + 4 * 64
    assert chain.training  # mode restored
    # one sample: the count does not depend on any batch size
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(chain, (1, 0, 8))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(chain, ())


def test_latency_restores_mode_and_reports_runs() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    model.train()
    lat = measure_latency(model, (3, 16, 16), batch_size=2, warmup=2, runs=7)
    assert isinstance(lat, Latency) and lat.runs == 7
    assert lat.median_ms > 0 and lat.iqr_ms >= 0
    assert model.training
    assert model[1].running_mean.abs().sum() == 0  # eval mode while timed: stats untouched


def test_latency_with_bn_folded() -> None:
    pytest.importorskip("normnas.nn.fuse")
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    lat = measure_latency(model, (3, 16, 16), warmup=1, runs=3, fold_bn=True)
    assert lat.runs == 3
    assert isinstance(model[1], nn.BatchNorm2d)  # the original keeps its BN


def test_latency_bad_arguments() -> None:
    with pytest.raises(ValueError, match="runs >= 1"):
        measure_latency(nn.Identity(), (1,), runs=0)


def test_big_models_cost_more() -> None:
    small = nn.Conv2d(3, 4, 3)
    big = nn.Conv2d(3, 64, 3)
    shape = (3, 32, 32)
    assert count_macs(big, shape) == 16 * count_macs(small, shape)
    assert count_flops(big, shape) == 16 * count_flops(small, shape)


# ---- the non-MAC work, each kind against a hand count on a tiny module


def test_pools_by_hand() -> None:
    # one op per window element per output element: padding does not change it
    max3 = nn.MaxPool2d(3, stride=2, padding=1)  # (2, 7, 7) -> (2, 4, 4)
    assert count_ops(max3, (2, 7, 7)) == OpCounts(0, 2 * 4 * 4 * 9, 0, 0, 0)
    avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    assert count_flops(avg, (2, 5, 5)) == 2 * 5 * 5 * 9
    assert count_flops(nn.AvgPool2d((2, 3)), (1, 6, 6)) == 1 * 3 * 2 * 6  # 3x2 out, 6 each
    assert count_flops(nn.AvgPool1d(3), (2, 9)) == 2 * 3 * 3
    assert count_flops(nn.MaxPool3d(2), (1, 4, 4, 4)) == 8 * 8
    # global average pool: every input element added once
    assert count_flops(nn.AdaptiveAvgPool2d(1), (3, 5, 7)) == 3 * 5 * 7
    # adaptive (2, 3) of 5 x 7: windows rows [0,3) [2,5), cols [0,3) [2,5) [4,7): 3 + 3, 3 * 3
    assert count_flops(nn.AdaptiveAvgPool2d((2, 3)), (1, 5, 7)) == (3 + 3) * (3 + 3 + 3)
    assert count_flops(nn.AdaptiveMaxPool2d(4), (2, 8, 8)) == 2 * 8 * 8  # disjoint windows


def test_norms_by_hand() -> None:
    elements = 4 * 6 * 6
    # BN measured in eval: a per-channel scale and shift, 1 per element
    assert count_ops(nn.BatchNorm2d(4), (4, 6, 6)) == OpCounts(0, 0, elements, 0, 0)
    # norms computing statistics of the input: 4 per element
    no_stats = nn.BatchNorm2d(4, track_running_stats=False)
    assert count_flops(no_stats, (4, 6, 6)) == 4 * elements
    assert count_flops(nn.GroupNorm(2, 4), (4, 6, 6)) == 4 * elements
    assert count_flops(nn.InstanceNorm2d(4, affine=True), (4, 6, 6)) == 4 * elements
    assert count_flops(nn.LayerNorm(6), (4, 6, 6)) == 4 * elements


def test_activations_by_hand() -> None:
    for act in (nn.ReLU(), nn.ReLU(inplace=True), nn.GELU(), nn.SiLU(), nn.Sigmoid(),
                nn.Hardswish(), nn.ReLU6(), nn.Tanh(), nn.LeakyReLU()):  # fmt: skip
        assert count_ops(act, (3, 4, 5)) == OpCounts(0, 0, 0, 60, 0), act
    assert count_flops(nn.Softmax(dim=1), (2, 6)) == 3 * 12  # exp, sum, divide


class _Residual(nn.Module):
    """x + relu(conv(x)) * 0.5: a functional add the module tree does not show."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.conv(x)) * 0.5


def test_residual_add_by_hand() -> None:
    e = 2 * 3 * 3
    # 1x1 conv 2 MACs per output, relu 1, scale 1, residual add 1 per element
    assert count_ops(_Residual(), (2, 3, 3)) == OpCounts(2 * e, 0, 0, e, 2 * e)


# ---- NAS-Bench-201 cells: avg pool costs, and more than a skip


def test_nb201_pool_cell_by_hand() -> None:
    c, h, w = 4, 6, 6
    e = c * h * w
    # 6 edges, each a 3x3 avg pool: 9 per output element; node 2 sums 2 terms, node 3 sums
    # 3: three adds of e elements
    pool = InferCell(("avg_pool_3x3",) * 6, c)
    assert count_ops(pool, (c, h, w)) == OpCounts(0, 6 * 9 * e, 0, 0, 3 * e)
    skip = InferCell(("skip_connect",) * 6, c)
    assert count_ops(skip, (c, h, w)) == OpCounts(0, 0, 0, 0, 3 * e)
    assert count_macs(pool, (c, h, w)) == count_macs(skip, (c, h, w)) == 0
    assert count_flops(pool, (c, h, w)) > count_flops(skip, (c, h, w))


def _cell_counts(op: str, c: int, hw: int) -> OpCounts:
    """A normal cell of `op` on every edge at c channels, hw x hw: the hand count."""
    e = c * hw * hw
    adds = 3 * e  # node 2 adds 2 terms, node 3 adds 3
    if op == "avg_pool_3x3":
        return OpCounts(0, 6 * 9 * e, 0, 0, adds)
    if op == "skip_connect":
        return OpCounts(0, 0, 0, 0, adds)
    assert op == "nor_conv_3x3"  # ReLU -> conv 3x3 (9c MACs per output) -> BN, per edge
    return OpCounts(6 * 9 * c * e, 0, 6 * e, 6 * e, adds)


def _reduction_counts(c_in: int, c_out: int, hw: int) -> OpCounts:
    """ResNet block, hw x hw -> hw/2: ReLUConvBN 3x3 s2, ReLUConvBN 3x3, avgpool 2 + 1x1."""
    e_in, e_out = c_in * hw * hw, c_out * (hw // 2) ** 2
    macs = 9 * c_in * e_out + 9 * c_out * e_out + c_in * e_out
    pool = 4 * c_in * (hw // 2) ** 2  # 2x2 avg pool
    return OpCounts(macs, pool, 2 * e_out, e_in + e_out, e_out)  # the last: residual add


def _sum(*counts: OpCounts) -> OpCounts:
    fields = ("macs", "pool", "norm", "activation", "elementwise")
    return OpCounts(*(sum(getattr(x, f) for x in counts) for f in fields))


@pytest.mark.parametrize("op", ["avg_pool_3x3", "skip_connect", "nor_conv_3x3"])
def test_nb201_network_by_hand(op: str) -> None:
    c, hw, classes = 4, 8, 10  # N = 1 cell per stage
    stem = OpCounts(27 * c * hw * hw, 0, c * hw * hw, 0, 0)  # conv 3x3 from 3 channels + BN
    e_last = 4 * c * (hw // 4) ** 2
    # BN + ReLU, global average pool over 2 x 2, linear
    head = OpCounts(4 * c * classes, e_last, e_last, e_last, 0)
    expected = _sum(
        stem,
        _cell_counts(op, c, hw),
        _reduction_counts(c, 2 * c, hw),
        _cell_counts(op, 2 * c, hw // 2),
        _reduction_counts(2 * c, 4 * c, hw // 2),
        _cell_counts(op, 4 * c, hw // 4),
        head,
    )
    model = NB201Network((op,) * 6, C=c, N=1, num_classes=classes)
    assert count_ops(model, (3, hw, hw)) == expected
    assert count_flops(model, (3, hw, hw)) == expected.flops
    assert count_macs(model, (3, hw, hw)) == expected.macs


def test_pool_cell_costs_more_than_skip_same_macs() -> None:
    shape = (3, 32, 32)
    pool = NB201Network(("avg_pool_3x3",) * 6)
    skip = NB201Network(("skip_connect",) * 6)
    # the MAC figure is what count_flops gave before it counted pools (issue: 7.8 M)
    assert count_macs(pool, shape) == count_macs(skip, shape) == 7_783_040
    # 5 cells per stage, 6 edges, 9 ops per output element, at 16x32x32, 32x16x16, 64x8x8
    pools = 5 * 6 * 9 * (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8)
    assert count_flops(pool, shape) - count_flops(skip, shape) == pools


def test_counting_and_timing_restore_each_submodules_own_mode() -> None:
    from normnas.train import count_flops, measure_latency

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a frozen BN inside a training model, as fine-tuning does
    before = [m.training for m in model.modules()]
    count_flops(model, (1, 8, 8))
    measure_latency(model, (1, 8, 8), runs=2, warmup=1)
    assert [m.training for m in model.modules()] == before
