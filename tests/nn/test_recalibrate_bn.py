"""recalibrate_bn: exact pooled statistics, nothing else touched, modes restored."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from normnas.nn import BatchNorm, is_batchnorm, recalibrate_bn, set_bn_momentum


def _shifted_batches(sizes: list[int], shape: tuple[int, ...]) -> list[tuple[torch.Tensor, ...]]:
    """(x, y) batches whose means differ batch to batch: pooled and averaged variance differ."""
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn((n, *shape), generator=gen) * 2 + 3 + i, torch.zeros(n))
        for i, n in enumerate(sizes)
    ]


@pytest.mark.parametrize(
    "layer,bn,shape",
    [
        (nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), (3, 6, 6)),
        (nn.Conv2d(3, 4, 3), BatchNorm(4), (3, 6, 6)),
        (nn.Linear(5, 4), nn.BatchNorm1d(4), (5,)),
        (nn.Conv3d(2, 4, 1), nn.BatchNorm3d(4), (2, 3, 3, 3)),
    ],
)
def test_eval_output_equals_normalizing_with_the_data_true_stats(
    layer: nn.Module, bn: nn.Module, shape: tuple[int, ...]
) -> None:
    model = nn.Sequential(layer, bn)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    model.train()
    model(torch.randn(8, *shape))  # stale stats from another distribution
    batches = _shifted_batches([7, 20, 3], shape)  # unequal sizes: weighting matters
    recalibrate_bn(model.eval(), batches)

    with torch.no_grad():
        y = layer(torch.cat([x for x, _ in batches]))  # everything the BN saw
    dims = [0, *range(2, y.dim())]
    mean, var = y.mean(dims), y.var(dims)  # pooled over all values, unbiased
    torch.testing.assert_close(bn.running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, var, atol=1e-5, rtol=1e-5)
    assert bn.num_batches_tracked.item() == 3
    # the documented choice: pooled, not once-for-all's average of batch variances
    view = (1, -1, *[1] * (y.dim() - 2))
    assert not torch.allclose(
        bn.running_var, torch.stack([layer(x).var(dims) for x, _ in batches]).mean(0)
    )

    x = batches[0][0]
    with torch.no_grad():
        z = layer(x)
        want = (z - mean.view(view)) / torch.sqrt(var.view(view) + bn.eps)
        want = want * bn.weight.view(view) + bn.bias.view(view)
        torch.testing.assert_close(model(x), want, atol=1e-5, rtol=1e-5)


def _deep() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Dropout(0.5),  # must be off while recalibrating
        nn.Conv2d(6, 6, 3, groups=3),
        BatchNorm(6, momentum=0.3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 5),
        nn.BatchNorm1d(5),
    )


def _torch_cumulative(model: nn.Module, xs: list[torch.Tensor]) -> nn.Module:
    """What torch itself computes: reset, momentum=None, BNs in train mode, dropout off."""
    ref = copy.deepcopy(model).eval()
    for m in ref.modules():
        if is_batchnorm(m):
            m.reset_running_stats()
            m.momentum = None
            m.train()
    with torch.no_grad():
        for x in xs:
            ref(x)
    return ref


def test_deep_model_matches_torch_train_pass() -> None:
    """Later BNs see earlier ones normalizing with batch stats, exactly as in training."""
    model = _deep()
    one = [torch.randn(16, 3, 6, 6) + 2]
    ref = _torch_cumulative(model, one)
    recalibrate_bn(model, one)
    for (name, got), (_, want) in zip(model.named_buffers(), ref.named_buffers(), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=name)
    # several equal-size batches: the mean is torch's cumulative mean of batch means
    many = [torch.randn(8, 3, 6, 6) * (1 + i) for i in range(3)]
    ref = _torch_cumulative(model, many)
    recalibrate_bn(model, many)
    for got, want in zip(model.modules(), ref.modules(), strict=True):
        if is_batchnorm(got):
            torch.testing.assert_close(got.running_mean, want.running_mean, atol=1e-5, rtol=1e-5)


def test_touches_nothing_else_and_restores_modes() -> None:
    model = _deep()
    model(torch.randn(4, 3, 6, 6)).sum().backward()  # gradients that must survive
    model.train()
    model[3].eval()  # mixed modes must come back as they were
    model[5].eval()
    modes = [m.training for m in model.modules()]
    params = {k: v.clone() for k, v in model.named_parameters()}
    grads = {k: v.grad.clone() for k, v in model.named_parameters()}
    momenta = [m.momentum for m in model.modules() if is_batchnorm(m)]

    recalibrate_bn(model, _shifted_batches([4, 4], (3, 6, 6)))

    assert [m.training for m in model.modules()] == modes
    assert [m.momentum for m in model.modules() if is_batchnorm(m)] == momenta
    for k, v in model.named_parameters():
        assert torch.equal(v, params[k]), k
        assert torch.equal(v.grad, grads[k]), k
        assert v.grad_fn is None


def test_num_batches_limits_what_is_consumed() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    xs = [torch.randn(4, 3) * (i + 1) for i in range(5)]
    stream = iter(xs)
    recalibrate_bn(model, stream, num_batches=2)
    assert next(stream) is xs[2]  # the third batch was not drawn
    with torch.no_grad():
        y = model[0](torch.cat(xs[:2]))
    torch.testing.assert_close(model[1].running_mean, y.mean(0))
    torch.testing.assert_close(model[1].running_var, y.var(0))


class _SkipsOne(nn.Module):
    """A supernet-like model: one registered BN is not on the path taken."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        self.off = nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_unreached_bn_is_reset_and_bad_input_raises() -> None:
    model = _SkipsOne()
    with torch.no_grad():
        model.off.running_mean.fill_(5.0)
    recalibrate_bn(model, [torch.randn(4, 3)])
    assert torch.equal(model.off.running_mean, torch.zeros(2))
    assert torch.equal(model.off.running_var, torch.ones(2))
    with pytest.raises(ValueError, match="batches: no batch given"):
        recalibrate_bn(model, [])
    with pytest.raises(ValueError, match="batches: each item must be a tensor"):
        recalibrate_bn(model, [{"x": torch.randn(4, 3)}])
    with pytest.raises(ValueError, match="num_batches"):
        recalibrate_bn(model, [torch.randn(4, 3)], num_batches=0)


def test_set_bn_momentum_sets_every_bn() -> None:
    model = _deep()
    assert set_bn_momentum(model, 0.01) is model
    bns = [m for m in model.modules() if is_batchnorm(m)]
    assert len(bns) == 3 and all(m.momentum == 0.01 for m in bns)
    set_bn_momentum(model, None)
    assert all(m.momentum is None for m in bns)
    # the momentum now drives the update: None is the cumulative average
    bn = bns[-1]
    bn.reset_running_stats()
    xs = [torch.randn(6, 5) + i for i in range(3)]
    for x in xs:
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))
    with pytest.raises(ValueError, match="momentum"):
        set_bn_momentum(model, 2.0)


def test_batch_average_variance_is_once_for_all_formula() -> None:
    layer, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    model = nn.Sequential(layer, bn)
    batches = _shifted_batches([5, 11, 2], (3, 6, 6))
    recalibrate_bn(model, batches, variance="batch_average")
    with torch.no_grad():
        outs = [layer(x) for x, _ in batches]
    dims = [0, 2, 3]
    sizes = torch.tensor([float(o.shape[0]) for o in outs])
    # once-for-all: batch-size weighted means of batch means and of biased batch variances
    want_mean = (torch.stack([o.mean(dims) for o in outs]) * sizes[:, None]).sum(0) / sizes.sum()
    want_var = (torch.stack([o.var(dims, unbiased=False) for o in outs]) * sizes[:, None]).sum(
        0
    ) / sizes.sum()
    torch.testing.assert_close(bn.running_mean, want_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, want_var, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="variance"):
        recalibrate_bn(model, batches, variance="median")  # type: ignore[arg-type]
