"""Parameters, multiply-adds (hand counts) and latency."""

from __future__ import annotations

import pytest
from torch import nn

from normnas.train import Latency, count_flops, count_params, measure_latency


def test_count_params_trainable_only() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(5, 2))
    # conv 3*8*9 + 8, bn 8 + 8, linear 5*2 + 2
    assert count_params(model) == 216 + 8 + 16 + 12
    model[2].weight.requires_grad_(False)
    assert count_params(model) == 216 + 8 + 16 + 2


def test_conv_macs_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    # every output (8 x 16 x 16) takes 3 * 3 * 3 multiply-adds
    assert count_flops(conv, (3, 16, 16)) == 8 * 16 * 16 * 27
    strided = nn.Conv2d(4, 6, 5, stride=2, padding=2, bias=False)  # out 6 x 8 x 8
    assert count_flops(strided, (4, 16, 16)) == 6 * 8 * 8 * 4 * 25
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise: 9 per output
    assert count_flops(grouped, (8, 10, 10)) == 8 * 10 * 10 * 9


def test_linear_and_chain_macs_by_hand() -> None:
    assert count_flops(nn.Linear(64, 10), (64,)) == 640
    chain = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 10),
    )  # fmt: skip
    chain.train()
    assert count_flops(chain, (1, 8, 8)) == 4 * 8 * 8 * 9 + 64 * 10
    assert chain.training  # mode restored
    # one sample: the count does not depend on any batch size
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(chain, (1, 0, 8))


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
    assert count_flops(big, shape) == 16 * count_flops(small, shape)
