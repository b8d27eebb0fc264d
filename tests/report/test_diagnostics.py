"""The final model's diagnostics kept in the study: BN γ, near-dead share, folded latency."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from normnas.search.final import FinalModel, save
from normnas.search.final_diagnostics import GAMMA_BINS, measure_final_model
from normnas.search.spaces import space_spec
from normnas.spaces import Block, MacroArch, MacroSpace

STAGES = [{"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 1},
          {"widths": [16], "min_blocks": 1, "max_blocks": 1, "stride": 2}]  # fmt: skip


def _checkpoint(
    tmp_path: Path, placement: str, stem_width: int = 16
) -> tuple[Path, torch.nn.Module]:
    space = MacroSpace.from_dict({"stages": STAGES, "dropout": [0.0], "stem_width": stem_width})
    arch = MacroArch(
        (
            (Block(8, 3, "batchnorm", placement, "relu", False),),
            (Block(16, 3, "groupnorm", "conv_norm_act", "relu", True),),
        )
    )
    torch.manual_seed(0)
    model = space.build(arch, num_classes=10, in_channels=1).eval()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(-1.0, 1.0, bn.num_features))
        bn.weight[1:3] = 0.0  # two near-dead channels
        bn.running_var.fill_(2.0)
    ckpt = {
        "state_dict": model.state_dict(), "arch": space.to_str(arch), "space": space_spec(space),
        "recipe": None, "num_classes": 10, "in_channels": 1, "image_size": [8, 8],
        "mean": [0.0], "std": [1.0], "test_accuracy": 0.5, "study": "t", "trial": 0,
    }  # fmt: skip
    return save(FinalModel(model, 0.5, ckpt), tmp_path / "m.pt"), model


def test_bn_gamma_histogram_and_near_dead_share(tmp_path: Path) -> None:
    path, model = _checkpoint(tmp_path, "conv_norm_act")
    diag = measure_final_model(path, latency_runs=3)
    (row,) = diag["bn"]  # the GroupNorm block is not a BatchNorm
    assert row["channels"] == 8
    assert row["low_gamma_share"] == pytest.approx(2 / 8)
    assert row["running_var"] == {"mean": 2.0, "min": 2.0, "max": 2.0}
    hist = row["gamma_hist"]
    assert len(hist["edges"]) == GAMMA_BINS + 1 and sum(hist["counts"]) == 8
    assert hist["edges"][0] == pytest.approx(-1.0) and hist["edges"][-1] == pytest.approx(1.0)
    assert hist["counts"][0] == 1 and hist["counts"][-1] == 1  # -1 and 1 at either end
    assert hist["counts"][GAMMA_BINS // 2] >= 2  # the two zeros in the middle bin
    assert diag["params"] == sum(p.numel() for p in model.parameters())
    assert diag["test_accuracy"] == 0.5
    assert diag["latency_ms"] > 0
    assert diag["latency_folded_ms"] is not None  # conv → BN folds into the conv


def test_nothing_folds_when_the_norm_comes_first(tmp_path: Path) -> None:
    # no stem: the first block's BN reads the input itself, no conv precedes it
    path, _ = _checkpoint(tmp_path, "norm_act_conv", stem_width=0)
    diag = measure_final_model(path, latency_runs=3)
    assert len(diag["bn"]) == 1 and diag["latency_folded_ms"] is None
