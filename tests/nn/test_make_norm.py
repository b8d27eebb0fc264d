"""make_norm: every name and alias normalizes (N, C, H, W) as its definition says."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normnas.nn import NORM_NAMES, BatchNorm, ChannelLayerNorm, make_norm

X = torch.randn(4, 8, 5, 5, generator=torch.Generator().manual_seed(0)) * 3 + 2


def _standardized(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


def _gn_by_hand(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return _standardized(x.view(n, groups, c // groups * h * w), (2,)).view(n, c, h, w)


# name -> what a fresh layer (γ=1, β=0, training mode) must output on X
EXPECTED = {
    "batchnorm": lambda x: _standardized(x, (0, 2, 3)),
    "groupnorm": lambda x: _gn_by_hand(x, 8),  # default: largest divisor of 8 that is <= 32
    "instancenorm": lambda x: _standardized(x, (2, 3)),
    "layernorm": lambda x: _standardized(x, (1,)),  # over channels at each position
    "none": lambda x: x,
}
ALIASES = {"bn": "batchnorm", "gn": "groupnorm", "in": "instancenorm", "ln": "layernorm"}


@pytest.mark.parametrize("name", [*EXPECTED, *ALIASES, "BN", "GroupNorm"])
def test_each_name_and_alias_normalizes_as_defined(name: str) -> None:
    layer = make_norm(name, 8)
    key = ALIASES.get(name.lower(), name.lower())
    torch.testing.assert_close(layer(X), EXPECTED[key](X), atol=1e-4, rtol=1e-4)


def test_names_and_types() -> None:
    assert set(NORM_NAMES) == set(EXPECTED)
    assert type(make_norm("bn", 8)) is nn.BatchNorm2d  # torch's fused kernel by default
    assert isinstance(make_norm("bn", 8, impl="reference"), BatchNorm)
    assert isinstance(make_norm("ln", 8), ChannelLayerNorm)
    assert isinstance(make_norm("none", 8), nn.Identity)
    assert make_norm("in", 8).affine  # like-for-like with BN, unlike torch's default


def test_reference_batchnorm_equals_torch_and_takes_options() -> None:
    ours = make_norm("batchnorm", 8, impl="reference", momentum=None, eps=1e-3)
    ref = make_norm("batchnorm", 8, momentum=None, eps=1e-3)
    torch.testing.assert_close(ours(X), ref(X), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var, atol=1e-5, rtol=1e-5)


def test_groupnorm_groups_option() -> None:
    torch.testing.assert_close(
        make_norm("gn", 8, groups=2)(X), _gn_by_hand(X, 2), atol=1e-4, rtol=1e-4
    )
    assert make_norm("gn", 96).num_groups == 32
    assert make_norm("gn", 6).num_groups == 6


@pytest.mark.parametrize("groups", [3, 0, -2, 16])
def test_impossible_groups_raise(groups: int) -> None:
    with pytest.raises(ValueError, match=f"groupnorm: groups={groups} must be >= 1 and divide"):
        make_norm("gn", 8, groups=groups)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown norm 'batchnrom'") as err:
        make_norm("batchnrom", 8)
    for valid in [*EXPECTED, *ALIASES]:
        assert valid in str(err.value)


def test_bad_impl_and_channels_raise() -> None:
    with pytest.raises(ValueError, match="impl must be 'torch' or 'reference'"):
        make_norm("bn", 8, impl="cuda")
    with pytest.raises(ValueError, match="num_features must be >= 1"):
        make_norm("bn", 0)
    with pytest.raises(ValueError, match=r"groupnorm: unsupported option in \['momentum'\]"):
        make_norm("gn", 8, momentum=0.1)
