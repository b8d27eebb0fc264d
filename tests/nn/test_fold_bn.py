"""fold_bn: eval outputs equal, BNs gone where foldable, kept where not, original untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normnas.nn import BatchNorm, find_foldable_pairs, fold_bn, is_batchnorm


def _warm(model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """Random γ/β and running stats far from (0, 1): a fold that ignores any of them shows."""
    torch.manual_seed(seed)
    for m in model.modules():
        if is_batchnorm(m) and m.weight is not None:
            with torch.no_grad():
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(shape) * 2 + 1)
    return model.eval()


def _count_bn(model: nn.Module) -> int:
    return sum(is_batchnorm(m) for m in model.modules())


def _assert_same_eval(a: nn.Module, b: nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.randn(shape) * 2 + 1
    with torch.no_grad():
        torch.testing.assert_close(b.eval()(x), a.eval()(x), atol=1e-4, rtol=1e-4)


def _chain() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        BatchNorm(8),  # ours
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 6, 1, groups=2), nn.BatchNorm2d(6, momentum=None)),  # grouped
        nn.Flatten(),
        nn.Linear(6 * 5 * 5, 10, bias=False),
        nn.BatchNorm1d(10, affine=False),
    )


def test_sequential_chain_folds_every_bn_and_keeps_outputs() -> None:
    model = _warm(_chain(), (8, 3, 5, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_bn(model)
    assert _count_bn(folded) == 0
    assert folded[0].bias is not None  # a bias was created where there was none
    _assert_same_eval(model, folded, (4, 3, 5, 5))
    # the original is untouched: same modules, same state
    assert _count_bn(model) == 4
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_conv1d_chain() -> None:
    model = _warm(nn.Sequential(nn.Conv1d(3, 4, 3), BatchNorm(4), nn.Tanh()), (6, 3, 9))
    folded = fold_bn(model)
    assert _count_bn(folded) == 0
    _assert_same_eval(model, folded, (2, 3, 9))


def test_bn_after_relu_is_not_folded() -> None:
    model = _warm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)), (4, 3, 6, 6))
    folded = fold_bn(model)
    assert isinstance(folded[2], nn.BatchNorm2d)
    _assert_same_eval(model, folded, (2, 3, 6, 6))


class _Residual(nn.Module):
    """The conv output is also the residual: folding the BN into the conv would change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_conv_output_used_elsewhere_is_not_folded() -> None:
    model = _warm(_Residual(), (4, 4, 5, 5))
    folded = fold_bn(model)
    assert isinstance(folded.bn, nn.BatchNorm2d)
    _assert_same_eval(model, folded, (2, 4, 5, 5))


class _OutOfOrder(nn.Module):
    """Registers conv, bn, other but runs bn(other(x)): registration order would pick wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_first = BatchNorm(8)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.other = nn.Conv2d(3, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.other(x)) + self.bn_first(self.conv(x))


def test_pairs_follow_data_flow_not_registration_order() -> None:
    model = _warm(_OutOfOrder(), (4, 3, 5, 5))
    assert sorted(find_foldable_pairs(model)) == [("conv", "bn_first"), ("other", "bn")]
    folded = fold_bn(model)
    assert _count_bn(folded) == 0
    _assert_same_eval(model, folded, (2, 3, 5, 5))


class _Untraceable(nn.Module):
    """Data-dependent control flow defeats fx; its Sequential child still folds."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = BatchNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        if x.sum() > 0:  # fx cannot trace a branch on tensor values
            return self.bn(self.conv(x))
        return self.bn(self.conv(-x))


def test_untraceable_module_folds_sequential_children_and_opt_in_pairs() -> None:
    model = _warm(_Untraceable(), (4, 3, 6, 6))
    folded = fold_bn(model)
    assert isinstance(folded.body[1], nn.Identity)
    assert isinstance(folded.bn, BatchNorm)  # cannot be verified: left alone
    _assert_same_eval(model, folded, (2, 3, 6, 6))
    opted = fold_bn(model, pairs=[("conv", "bn")])
    assert _count_bn(opted) == 0
    _assert_same_eval(model, opted, (2, 3, 6, 6))


def test_shared_or_untracked_bn_is_not_folded() -> None:
    conv = nn.Conv2d(3, 4, 3)
    shared = nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(conv))
    assert find_foldable_pairs(shared) == []
    untracked = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    folded = fold_bn(_warm(untracked, (4, 3, 5, 5)))
    assert isinstance(folded[1], nn.BatchNorm2d)


def test_bad_opt_in_pair_raises() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(5))
    with pytest.raises(ValueError, match=r"pairs: cannot fold '2' into '0'.*5 channels"):
        fold_bn(model, pairs=[("0", "2")])
    with pytest.raises(ValueError, match="not a Conv"):
        fold_bn(model, pairs=[("1", "2")])
