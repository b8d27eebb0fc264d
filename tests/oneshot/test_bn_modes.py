"""BN modes of a sub-network: running, batch and recalibrate (restoring the supernet)."""

from __future__ import annotations

import pytest
import torch

from normnas.data.split import DataBundle
from normnas.nn import recalibrate_bn
from normnas.oneshot import (
    NB201Supernet,
    bn_state,
    calibration_batches,
    evaluate_subnet,
    recalibrated,
)

ARCH = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "none")
OTHER = ("nor_conv_1x1", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "none", "nor_conv_1x1")


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return int((logits.argmax(1) == y).sum()) / len(y)


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_recalibrate_sets_the_stats_recalibrate_bn_defines(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    batches = calibration_batches(data.train, 3, batch_size=32, seed=4)
    expected = recalibrate_bn(supernet.subnet(ARCH), batches).state_dict()
    with recalibrated(supernet, ARCH, batches):
        inside = supernet.subnet_state_dict(ARCH)
    for key, value in expected.items():
        if "running" in key or "num_batches" in key:
            torch.testing.assert_close(inside[key], value, rtol=1e-6, atol=1e-7)
    assert int(inside["stem.1.num_batches_tracked"]) == 3


def test_recalibrate_restores_every_bn_of_the_supernet(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    before = bn_state(supernet)
    other_path = supernet.subnet_state_dict(OTHER)
    score = evaluate_subnet(supernet, ARCH, data.valid, "recalibrate", 2, data.train)
    _assert_same_state(bn_state(supernet), before)
    _assert_same_state(supernet.subnet_state_dict(OTHER), other_path)
    assert 0.0 <= score.accuracy <= 1.0


def test_recalibrate_accuracy_equals_recalibrated_subnet(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    batches = calibration_batches(data.train, 2, batch_size=64, seed=0)
    sub = recalibrate_bn(supernet.subnet(ARCH), batches).eval()
    with torch.no_grad():
        logits = sub(data.valid.x)
    score = evaluate_subnet(supernet, ARCH, data.valid, "recalibrate", batches)
    assert score.accuracy == _accuracy(logits, data.valid.y)
    loss = torch.nn.functional.cross_entropy(logits, data.valid.y).item()
    assert score.loss == pytest.approx(loss, rel=1e-5)


def test_running_mode_uses_the_supernets_running_stats(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    sub = supernet.subnet(ARCH).eval()
    with torch.no_grad():
        expected = _accuracy(sub(data.valid.x), data.valid.y)
    score = evaluate_subnet(supernet, ARCH, data.valid, "running")
    assert score.accuracy == expected


def test_batch_mode_uses_batch_stats_and_keeps_running_stats(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    before = bn_state(supernet)
    sub = supernet.subnet(ARCH).train()  # train mode: batch statistics
    with torch.no_grad():
        logits = sub(data.valid.x)  # one batch: the evaluation batch size covers the split
    score = evaluate_subnet(supernet, ARCH, data.valid, "batch", batch_size=len(data.valid))
    assert score.accuracy == _accuracy(logits, data.valid.y)
    _assert_same_state(bn_state(supernet), before)
    assert not supernet.training


def test_modes_differ_on_a_supernet_with_foreign_stats(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    # the fixture's running stats are random, as a supernet's are for any one path:
    # recalibration must beat them on the loss
    running = evaluate_subnet(supernet, ARCH, data.valid, "running")
    recal = evaluate_subnet(supernet, ARCH, data.valid, "recalibrate", 4, data.train)
    assert recal.loss != running.loss


def test_bad_mode_and_missing_calibration_data(supernet: NB201Supernet, data: DataBundle) -> None:
    with pytest.raises(ValueError, match="bn_mode must be one of running, batch, recalibrate"):
        evaluate_subnet(supernet, ARCH, data.valid, "train")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs calib_split"):
        evaluate_subnet(supernet, ARCH, data.valid, "recalibrate", 2)
    with pytest.raises(ValueError, match="calib_batches must be >= 1"):
        calibration_batches(data.train, 0)


def test_calibration_batches_are_fixed_and_unaugmented(data: DataBundle) -> None:
    a = calibration_batches(data.train, 3, batch_size=50, seed=2)
    b = calibration_batches(data.train, 3, batch_size=50, seed=2)
    assert [len(x) for x in a] == [50, 50, 50]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    rows = {tuple(r.flatten().tolist()) for r in data.train.x}
    assert all(tuple(r.flatten().tolist()) in rows for r in torch.cat(a))
