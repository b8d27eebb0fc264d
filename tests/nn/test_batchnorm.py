"""Our BatchNorm against torch's BatchNorm1d/2d: outputs, gradients, running stats, state dicts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normnas.nn import BatchNorm

TOL = {"atol": 1e-5, "rtol": 1e-5}

# (torch layer, input shape): (N, C), (N, C, L), (N, C, H, W)
CASES = [(nn.BatchNorm1d, (16, 5)), (nn.BatchNorm1d, (8, 5, 7)), (nn.BatchNorm2d, (4, 5, 6, 3))]
SETTINGS = [
    {"momentum": 0.1},
    {"momentum": 0.3, "eps": 1e-3},
    {"momentum": None},
    {"affine": False},
    {"track_running_stats": False},
    {"momentum": None, "affine": False, "track_running_stats": False},
]


def _pair(torch_cls: type[nn.Module], settings: dict) -> tuple[nn.Module, BatchNorm]:
    ref = torch_cls(5, **settings)
    ours = BatchNorm(5, **settings)
    if ref.affine:  # non-trivial γ/β so a swapped or ignored parameter shows
        with torch.no_grad():
            ref.weight.uniform_(0.5, 2.0)
            ref.bias.uniform_(-1.0, 1.0)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _step(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and (if affine) γ/β gradients of <layer(x), g>."""
    x = x.clone().requires_grad_(True)
    layer.zero_grad()
    y = layer(x)
    (y * g).sum().backward()
    grads = (layer.weight.grad, layer.bias.grad) if layer.weight is not None else ()
    return (y.detach(), x.grad, *grads)


@pytest.mark.parametrize("torch_cls,shape", CASES)
@pytest.mark.parametrize("settings", SETTINGS)
def test_matches_torch_in_train_and_eval(
    torch_cls: type[nn.Module], shape: tuple[int, ...], settings: dict
) -> None:
    gen = torch.Generator().manual_seed(0)
    ref, ours = _pair(torch_cls, settings)
    for step in range(4):  # several steps so momentum / cumulative averaging is exercised
        # shifted, scaled data so running stats move far from (0, 1)
        x = torch.randn(shape, generator=gen) * (1 + step) + 3.0
        g = torch.randn(shape, generator=gen)
        for a, b in zip(_step(ref, x, g), _step(ours, x, g), strict=True):
            torch.testing.assert_close(b, a, **TOL)
        for name, buf in ref.named_buffers():
            torch.testing.assert_close(dict(ours.named_buffers())[name], buf, **TOL)
    ref.eval()
    ours.eval()
    x = torch.randn(shape, generator=gen) + 2.0
    g = torch.randn(shape, generator=gen)
    for a, b in zip(_step(ref, x, g), _step(ours, x, g), strict=True):
        torch.testing.assert_close(b, a, **TOL)


def test_running_stats_by_hand() -> None:
    """Unbiased running variance and the cumulative average of momentum=None."""
    bn = BatchNorm(2, momentum=None)
    xs = [torch.randn(6, 2) * 3 + 1 for _ in range(3)]
    for x in xs:
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([x.var(0) for x in xs]).mean(0))
    assert bn.num_batches_tracked.item() == 3


def test_eval_uses_running_stats_by_hand() -> None:
    bn = BatchNorm(3).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        bn.weight.copy_(torch.tensor([2.0, 1.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, 3.0]))
    x = torch.randn(4, 3, 2, 2)
    m, v = bn.running_mean.view(1, 3, 1, 1), bn.running_var.view(1, 3, 1, 1)
    want = (x - m) / torch.sqrt(v + bn.eps) * bn.weight.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(bn(x), want)


@pytest.mark.parametrize("torch_cls", [nn.BatchNorm1d, nn.BatchNorm2d])
def test_state_dict_loads_both_ways(torch_cls: type[nn.Module]) -> None:
    shape = (8, 4) if torch_cls is nn.BatchNorm1d else (8, 4, 3, 3)
    ours = BatchNorm(4, momentum=0.5)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2.0)
        ours.bias.uniform_(-1.0, 1.0)
    for _ in range(3):
        ours(torch.randn(shape) + 1)
    ref = torch_cls(4)
    ref.load_state_dict(ours.state_dict())  # strict: same keys both sides
    assert ref.num_batches_tracked.item() == 3
    back = BatchNorm(4)
    back.load_state_dict(ref.state_dict())
    for key, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    x = torch.randn(shape)
    torch.testing.assert_close(back.eval()(x), ref.eval()(x), **TOL)


def test_state_dict_keys_equal_torch() -> None:
    assert list(BatchNorm(3).state_dict()) == list(nn.BatchNorm2d(3).state_dict())
    assert list(BatchNorm(3, affine=False, track_running_stats=False).state_dict()) == []


def test_one_value_per_channel_in_training_raises() -> None:
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.randn(1, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.randn(1, 3, 1, 1))
    assert bn.num_batches_tracked.item() == 0  # a refused batch leaves the stats alone
    bn(torch.randn(1, 3, 2, 1))  # one sample but two values per channel: allowed, as in torch
    bn.eval()
    assert bn(torch.randn(1, 3)).shape == (1, 3)  # eval uses running stats: one sample is fine


@pytest.mark.parametrize("eps", [0.0, -1e-5])
def test_eps_must_be_positive(eps: float) -> None:
    with pytest.raises(ValueError, match="eps must be > 0"):
        BatchNorm(3, eps=eps)


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm(0)
    with pytest.raises(ValueError, match="num_features=3"):
        BatchNorm(3)(torch.randn(4, 2))
    with pytest.raises(ValueError, match="2 to 5 dims"):
        BatchNorm(3)(torch.randn(3))
