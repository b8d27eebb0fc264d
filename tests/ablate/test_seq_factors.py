"""Ablation of the seq space: its factor defaults, its placements, and one run per network
(without a norm every placement is the same network, so those cells share a run)."""

from __future__ import annotations

import pytest

from normnas.ablate.cells import AblationSpace, Point, seq_default
from normnas.ablate.design import Design
from normnas.ablate.factors import parse_factors
from normnas.errors import ConfigError


def test_seq_defaults_compare_with_layernorm_and_pre_norm() -> None:
    norm, placement = parse_factors(["norm", "placement"], space="seq")
    assert norm.levels == ("batchnorm", "layernorm", "rmsnorm", "groupnorm", "none")
    assert norm.baseline == "layernorm"
    assert placement.levels == ("post", "pre") and placement.baseline == "pre"
    assert parse_factors(["placement"])[0].baseline == "conv_norm_act"  # macro unchanged
    with pytest.raises(ConfigError, match="level 'conv_norm_act' is not one of post, pre"):
        parse_factors(["placement"], {"placement": ["conv_norm_act"]}, space="seq")


def test_cells_without_a_norm_share_one_network() -> None:
    factors = parse_factors(["norm", "placement"], {"norm": ["rmsnorm", "none"]}, space="seq")
    cells = tuple((n, p) for n in factors[0].levels for p in factors[1].levels)
    space, arch = seq_default()
    ablation = AblationSpace(Design("full", factors, cells, "test"), [0], space, arch)
    keys = {ablation.to_str(ablation.canonical(p)) for p in ablation.points}
    assert len(keys) == 3  # rmsnorm post, rmsnorm pre, none (either placement)
    point = ablation.arch_of(Point(("rmsnorm", "post"), 0))
    assert {(b.norm, b.placement) for s in point.stages for b in s} == {("rmsnorm", "post")}
    assert ablation.canonical(Point(("none", "pre"), 0)) == Point(("none", "post"), 0)
