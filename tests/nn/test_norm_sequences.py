"""RMSNorm equals torch.nn.RMSNorm; make_norm(dims=1) normalizes (N, C, T) as each norm's
definition says (LayerNorm and RMSNorm over the channels at each time step)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normnas.nn import ALL_NORM_NAMES, NORM_NAMES, ChannelRMSNorm, make_norm

X = torch.randn(4, 6, 9, generator=torch.Generator().manual_seed(0)) * 3 + 2  # (N, C, T)


def _standardized(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


@pytest.mark.parametrize("shape", [(4, 6, 9), (2, 6, 5, 3)])
def test_rmsnorm_equals_torch_rmsnorm(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 2 + 1
    ours = make_norm("rmsnorm", 6, dims=len(shape) - 2, eps=1e-6).double()
    ref = nn.RMSNorm(6, eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        ours.weight.copy_(torch.rand(6, generator=g, dtype=torch.float64) + 0.5)
        ref.weight.copy_(ours.weight)
    # torch's RMSNorm normalizes the last dims: put the channels last for it
    want = ref(x.movedim(1, -1)).movedim(-1, 1)
    torch.testing.assert_close(ours(x), want, atol=1e-6, rtol=0)


def test_rmsnorm_is_named_and_aliased_but_not_an_image_default() -> None:
    assert isinstance(make_norm("rms", 6), ChannelRMSNorm)
    assert "rmsnorm" in ALL_NORM_NAMES and "rmsnorm" not in NORM_NAMES
    assert make_norm("rmsnorm", 6, affine=False).weight is None


# name -> what a fresh layer (training mode) must output on (N, C, T)
EXPECTED = {
    "batchnorm": lambda x: _standardized(x, (0, 2)),  # per channel over batch and time
    "groupnorm": lambda x: _standardized(x.view(4, 6, 9), (2,)),  # 6 groups of 1 channel
    "instancenorm": lambda x: _standardized(x, (2,)),
    "layernorm": lambda x: _standardized(x, (1,)),  # channels at each time step
    "rmsnorm": lambda x: x / torch.sqrt(x.pow(2).mean(1, keepdim=True) + 1e-6),
    "none": lambda x: x,
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_dims_1_normalizes_sequences_as_defined(name: str) -> None:
    layer = make_norm(name, 6, dims=1)
    torch.testing.assert_close(layer(X), EXPECTED[name](X), atol=1e-4, rtol=1e-4)


def test_dims_1_layer_types_and_bad_dims() -> None:
    assert type(make_norm("bn", 6, dims=1)) is nn.BatchNorm1d
    assert type(make_norm("in", 6, dims=1)) is nn.InstanceNorm1d
    assert type(make_norm("bn", 6)) is nn.BatchNorm2d  # images stay the default
    with pytest.raises(ValueError, match="dims must be 1"):
        make_norm("bn", 6, dims=3)
