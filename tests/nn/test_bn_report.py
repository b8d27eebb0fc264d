"""bn_report on hand-set γ and running statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normnas.nn import BatchNorm, bn_report


def test_report_on_hand_set_values() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.Sequential(nn.Flatten(), nn.Linear(4, 2), BatchNorm(2, affine=False)),
        nn.BatchNorm1d(2, track_running_stats=False),
    )
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -0.001, 2.0, 0.02]))
        model[1].running_mean.copy_(torch.tensor([1.0, -3.0, 2.0, 0.0]))
        model[1].running_var.copy_(torch.tensor([0.5, 1.5, 4.0, 2.0]))
        model[3].weight.copy_(torch.tensor([0.0, 0.009]))

    rows = bn_report(model, threshold=0.01)

    assert [r["name"] for r in rows] == ["1", "2.2", "3"]
    first = rows[0]
    assert first["channels"] == 4
    assert first["mean_abs_gamma"] == pytest.approx((0.5 + 0.001 + 2.0 + 0.02) / 4)
    assert first["low_gamma_share"] == pytest.approx(0.25)  # only |-0.001| < 0.01
    assert first["running_mean"] == pytest.approx({"mean": 0.0, "min": -3.0, "max": 2.0})
    assert first["running_var"] == pytest.approx({"mean": 2.0, "min": 0.5, "max": 4.0})
    assert rows[1]["mean_abs_gamma"] is None and rows[1]["low_gamma_share"] is None
    assert rows[1]["running_var"] == pytest.approx({"mean": 1.0, "min": 1.0, "max": 1.0})
    assert rows[2]["low_gamma_share"] == pytest.approx(1.0)
    assert rows[2]["running_mean"] is None
    assert bn_report(model, threshold=0.05)[0]["low_gamma_share"] == pytest.approx(0.5)


def test_no_bn_and_bad_threshold() -> None:
    assert bn_report(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) == []
    with pytest.raises(ValueError, match="threshold"):
        bn_report(nn.BatchNorm1d(2), threshold=-1.0)
