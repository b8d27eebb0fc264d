"""Each proxy against a hand computation on a tiny network, and what no proxy may do."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from normnas.proxies import measures
from normnas.proxies.registry import PROXIES
from normnas.spaces import NB201Space

torch.set_default_dtype(torch.float32)


def _linear_net(bn: bool = False) -> nn.Sequential:
    torch.manual_seed(3)
    layers: list[nn.Module] = [nn.Linear(3, 4, bias=False)]
    if bn:
        layers.append(nn.BatchNorm1d(4))
    layers.append(nn.Linear(4, 2, bias=False))
    return nn.Sequential(*layers)


def _relu_net() -> nn.Sequential:
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))


def _batch(n: int = 6, dim: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return torch.randn(n, dim, generator=g), torch.tensor([0, 1] * (n // 2))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _linear_grads(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor, rows=slice(None)):
    """Cross-entropy gradients of logits = x W1^T W2^T, written out: (dW1, dW2, a1, dlogits)."""
    w1, w2 = _np(net[0].weight), _np(net[-1].weight)
    xs, ys = _np(x)[rows], y.numpy()[rows]
    a1 = xs @ w1.T
    logits = a1 @ w2.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = (p - np.eye(2)[ys]) / len(xs)  # d mean-CE / d logits
    return (delta @ w2).T @ xs, delta.T @ a1, a1, delta


def test_synflow_of_a_linear_net_is_twice_the_path_sum_of_its_absolute_weights() -> None:
    net = _linear_net(bn=True)  # BN is removed by synflow: its affine values must not matter
    with torch.no_grad():
        net[1].weight.fill_(7.0)
        net[1].bias.fill_(-3.0)
    w1, w2 = np.abs(_np(net[0].weight)), np.abs(_np(net[2].weight))
    # R = 1^T |W2| |W1| 1 is linear in each layer, so sum(w * dR/dw) = R per layer
    expected = 2 * float(np.ones(2) @ w2 @ w1 @ np.ones(3))
    assert measures.synflow(net, _batch()) == pytest.approx(expected, rel=1e-12)


def test_grad_norm_and_snip_are_sums_of_the_weight_gradients() -> None:
    net = _linear_net()
    x, y = _batch()
    g1, g2, _, _ = _linear_grads(net, x, y)
    assert measures.grad_norm(net, (x, y)) == pytest.approx(
        np.linalg.norm(g1) + np.linalg.norm(g2), rel=1e-5
    )
    w1, w2 = _np(net[0].weight), _np(net[1].weight)
    snip = np.abs(g1 * w1).sum() + np.abs(g2 * w2).sum()
    assert measures.snip(net, (x, y)) == pytest.approx(snip, rel=1e-5)


def test_fisher_sums_half_the_mean_squared_activation_times_gradient() -> None:
    net = _linear_net()
    x, y = _batch()
    _, _, a1, delta = _linear_grads(net, x, y)
    logits = a1 @ _np(net[1].weight).T
    g_a1 = delta @ _np(net[1].weight)
    expected = 0.5 * ((a1 * g_a1) ** 2).mean(0).sum() + 0.5 * ((logits * delta) ** 2).mean(0).sum()
    assert measures.fisher(net, (x, y)) == pytest.approx(expected, rel=1e-4)


def test_zico_of_two_halves_matches_the_formula() -> None:
    net = _linear_net()
    x, y = _batch()
    halves = [_linear_grads(net, x, y, slice(0, 3)), _linear_grads(net, x, y, slice(3, 6))]
    expected = 0.0
    for layer in (0, 1):
        g = np.stack([h[layer].reshape(-1) for h in halves])
        std, keep = g.std(0), g.std(0) != 0
        expected += math.log(np.sum(np.abs(g).mean(0)[keep] / std[keep]))
    assert measures.zico(net, (x, y)) == pytest.approx(expected, rel=1e-4)


def test_grasp_is_minus_weights_times_hessian_gradient_product() -> None:
    net = _linear_net()
    x, y = _batch()
    w1, w2 = net[0].weight.detach().clone(), net[1].weight.detach().clone()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        a, b = flat[:12].reshape(4, 3), flat[12:].reshape(2, 4)
        return nn.functional.cross_entropy(x @ a.T @ b.T, y)

    theta = torch.cat([w1.reshape(-1), w2.reshape(-1)]).double()
    x = x.double()
    hess = torch.autograd.functional.hessian(loss, theta)
    grad = torch.autograd.functional.jacobian(loss, theta)
    expected = float(-(theta * (hess @ grad)).sum())
    assert measures.grasp(net, (x.float(), y)) == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_naswot_is_the_log_determinant_of_the_code_agreement_kernel() -> None:
    net = _relu_net()
    x, y = _batch(n=4)
    c = (_np(x) @ _np(net[0].weight).T + _np(net[0].bias) > 0).astype(float)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = np.linalg.slogdet(kernel)
    expected = logdet if sign > 0 else -math.inf
    assert measures.naswot(net, (x, y)) == pytest.approx(expected, rel=1e-9)
    assert 0 < expected < math.inf  # the batch was chosen so the kernel is regular


def test_jacov_scores_the_eigenvalues_of_the_jacobian_correlation() -> None:
    net = _relu_net()
    x, y = _batch()
    w1, b1, w2 = _np(net[0].weight), _np(net[0].bias), _np(net[2].weight)
    masks = (_np(x) @ w1.T + b1 > 0).astype(float)
    jac = np.stack([w1.T @ (m * (w2.T @ np.ones(2))) for m in masks])  # d(sum out)/dx per row
    v = np.linalg.eigvalsh(np.corrcoef(jac))
    expected = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert measures.jacov(net, (x, y)) == pytest.approx(expected, rel=1e-4)


def test_jacov_of_a_constant_network_is_minus_infinity() -> None:
    net = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.zero_()
    assert measures.jacov(net, _batch()) == -math.inf


def _conv_net() -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    )


def _images(n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, 1, 4, 4, generator=g), torch.zeros(n, dtype=torch.long)


def test_meco_sums_min_eigenvalues_of_each_feature_maps_channel_correlation() -> None:
    net = _conv_net()
    x, y = _images()
    conv = _np(net[0](x))[0].reshape(3, -1)  # first sample, C x HW
    relu = np.maximum(conv, 0)
    expected = 0.0
    for fea in (conv, relu):  # the two 4-D outputs (the pool's is 1x1: no correlation)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.nan_to_num(np.corrcoef(fea), nan=0.0)
        expected += np.linalg.eigvalsh(corr).min()
    assert measures.meco(net, (x, y)) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_swap_counts_distinct_unit_patterns_over_the_samples() -> None:
    net = _conv_net()
    x, y = _images()
    code = _np(net[0](x)).reshape(len(x), -1) > 0  # samples x units
    expected = len({tuple(col) for col in code.T})
    assert measures.swap(net, (x, y)) == expected


@pytest.mark.parametrize("n", [5, 64, 70, 130])
def test_swap_packing_counts_the_same_distinct_columns_as_a_plain_unique(n: int) -> None:
    """Packed 64 samples to a word, the count equals numpy's unique over boolean rows,
    past one word too, with duplicated and all-off units."""
    g = torch.Generator().manual_seed(n)
    bits = torch.rand(n, 3000, generator=g) > 0.5
    bits[:, 1000:2000] = bits[:, :1000]
    bits[:, 2500:] = False
    expected = len(np.unique(bits.numpy().T, axis=0))
    assert measures._distinct_columns(bits) == expected


def test_regularized_swap_is_the_papers_gaussian_of_the_size_in_thousands() -> None:
    # 1,000 parameters is 1 thousand: at mu exactly, the score is SWAP itself
    assert measures.regularized_swap(500.0, 1000, mu_k=1.0, sigma=2.0) == 500.0
    assert measures.regularized_swap(500.0, 3000, mu_k=1.0, sigma=2.0) == pytest.approx(
        500.0 * math.exp(-4.0 / 2.0)
    )
    with pytest.raises(ValueError, match="sigma"):
        measures.regularized_swap(1.0, 1.0, mu_k=1.0, sigma=0.0)


def test_swap_reg_scores_swap_times_the_size_prior_and_needs_one() -> None:
    from normnas.errors import ConfigError
    from normnas.proxies.registry import SizePrior, score_all

    net, batch = _conv_net(), _images()
    prior = SizePrior.of_sizes([10_000.0, 20_000.0, 40_000.0])  # 10, 20, 40 thousand
    assert prior.mu_k == 40.0
    assert prior.sigma == pytest.approx(np.var([10.0, 20.0, 40.0]))
    scores, _ = score_all(net, batch, ("swap", "swap_reg"), size_prior=prior)
    n_params = sum(p.numel() for p in net.parameters())
    assert scores["swap_reg"] == pytest.approx(
        scores["swap"] * math.exp(-((n_params / 1e3 - 40.0) ** 2) / prior.sigma)
    )
    with pytest.raises(ConfigError, match="swap_reg"):
        score_all(net, batch, ("swap_reg",))


def test_zen_ignores_the_models_weights_but_not_its_shape() -> None:
    """Zen re-draws every weight from N(0, 1): trained or scaled weights change nothing."""
    net = _conv_net()
    batch = _images()
    base = measures.zen(net, batch)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    assert measures.zen(net, batch) == pytest.approx(base, rel=1e-6)
    wider = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2))  # fmt: skip
    assert measures.zen(wider, batch) > base  # more channels: a larger expected perturbation


def test_params_and_flops_baselines() -> None:
    net = _conv_net()
    assert measures.params(net, _images()) == 3 * 9 + 3 + 3 * 2 + 2
    # conv MACs 3*9 per output pixel (16 pixels) + linear 6 MACs, before the other ops
    assert measures.flops(net, _images()) >= 3 * 9 * 16 + 6


# -- contracts of every proxy -----------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201_net() -> nn.Module:
    torch.manual_seed(0)
    arch = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3")
    return NB201Space().build(arch, num_classes=3, in_channels=2, C=4, N=1)


@pytest.fixture(scope="module")
def nb201_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 2, 8, 8, generator=g), torch.arange(8) % 3


@pytest.mark.parametrize("name", list(PROXIES))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_no_proxy_changes_weights_bn_statistics_flags_grads_or_rng(
    name: str, mode: str, nb201_net: nn.Module, nb201_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    net = nb201_net.train(mode == "train")
    net.cells[0].ops[0][2].eval()  # one BN in another mode than its parents: kept as it is
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [m.training for m in net.modules()]
    rng = torch.get_rng_state()
    PROXIES[name](net, nb201_batch, seed=0)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), name
    assert [m.training for m in net.modules()] == flags
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("name", list(PROXIES))
def test_every_proxy_is_deterministic_for_a_fixed_batch_and_seed(
    name: str, nb201_net: nn.Module, nb201_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    first = PROXIES[name](nb201_net, nb201_batch, seed=0)
    torch.manual_seed(123)  # the caller's RNG state must not matter
    assert PROXIES[name](nb201_net, nb201_batch, seed=0) == first
    assert math.isfinite(first) or first == -math.inf


def test_zen_depends_on_its_seed(
    nb201_net: nn.Module, nb201_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    assert measures.zen(nb201_net, nb201_batch, seed=0) != measures.zen(
        nb201_net, nb201_batch, seed=1
    )
