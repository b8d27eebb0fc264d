"""DARTS, GDAS and DrNAS on the relaxed NB201 supernet: gradients, optimizers, resume."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from normnas.errors import ConfigError
from normnas.oneshot.gradient import (
    GradientOptions,
    current_weights,
    derive_choice,
    entropy,
    init_alphas,
    sample_weights,
    search_gradient,
    unrolled_arch_grads,
)
from normnas.oneshot.relaxed_nb201 import RelaxedNB201
from normnas.spaces import NB201Space
from normnas.spaces._nb201_model import EDGES
from normnas.spaces.nb201 import OPS

from .helpers import small_digits


def tiny(seed: int = 0, **kw) -> RelaxedNB201:
    torch.manual_seed(seed)
    return RelaxedNB201(NB201Space(), 10, 1, C=4, N=1, **kw)


def test_second_order_gradient_equals_the_exact_unrolled_gradient():
    """The finite-difference Hessian-vector product against autograd through the virtual
    step: the gradient of L_val(w - xi grad_w L_train(w, a), a) w.r.t. a, exactly."""
    torch.manual_seed(0)
    net = tiny().double()
    alphas = [a.double() for a in init_alphas(net, 0)]
    alphas = [torch.randn_like(a).requires_grad_() for a in alphas]
    xt, yt = torch.randn(8, 1, 6, 6, dtype=torch.float64), torch.randint(0, 10, (8,))
    xv, yv = torch.randn(8, 1, 6, 6, dtype=torch.float64), torch.randint(0, 10, (8,))
    xi = 0.05
    # DARTS's eps (0.01 / ||v||) steps across ReLU kinks; a small one converges in float64
    fd = unrolled_arch_grads(net, alphas, (xt, yt), (xv, yv), xi, eps_scale=1e-6)

    names = [n for n, _ in net.named_parameters()]
    params = [p for _, p in net.named_parameters()]

    def loss(ps, batch):
        x, y = batch
        state = dict(zip(names, ps, strict=True))
        weights = [torch.softmax(a, 0) for a in alphas]
        return F.cross_entropy(functional_call(net, state, (x, weights)), y)

    g = torch.autograd.grad(loss(params, (xt, yt)), params, create_graph=True)
    unrolled = [p - xi * gi for p, gi in zip(params, g, strict=True)]
    exact = torch.autograd.grad(loss(unrolled, (xv, yv)), alphas)
    for a, b in zip(fd, exact, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    # and the Hessian term matters: the first-order gradient differs
    first = torch.autograd.grad(loss(params, (xv, yv)), alphas)
    assert max(float((a - b).abs().max()) for a, b in zip(first, exact, strict=True)) > 1e-6


def test_network_and_architecture_parameters_never_share_an_optimizer(monkeypatch):
    seen: dict[str, list[set[int]]] = {"SGD": [], "Adam": []}
    for name in seen:
        cls = getattr(torch.optim, name)

        class Spy(cls):  # the real optimizer, recording what it was given
            def __init__(self, params, *a, _n=name, **k):
                params = list(params)
                seen[_n].append({id(p) for p in params})
                super().__init__(params, *a, **k)

        monkeypatch.setattr(torch.optim, name, Spy)
    net = tiny()
    search_gradient(net, small_digits(64, 64), GradientOptions("darts", epochs=1, batch_size=32))
    (sgd,), (adam,) = seen["SGD"], seen["Adam"]
    assert sgd == {id(p) for p in net.parameters()}
    assert len(adam) == 6 and not sgd & adam


def test_gdas_runs_one_op_per_edge_in_each_forward():
    net = tiny()
    calls: list[int] = []
    for ops in net.cells[0].edges:
        for module in ops.values():
            module.register_forward_hook(lambda m, i, o: calls.append(1))
    alphas = init_alphas(net, 0)
    weights, active, _ = sample_weights(GradientOptions("gdas"), alphas, tau=1.0)
    assert active is not None and all(float(w.sum()) == pytest.approx(1.0) for w in weights)
    net(torch.randn(4, 1, 8, 8), weights, active)
    assert len(calls) == sum(OPS[a] != "none" for a in active)
    soft_calls = len(calls)
    calls.clear()
    net(torch.randn(4, 1, 8, 8), current_weights("darts", alphas))
    assert len(calls) == 6 * 4 and soft_calls <= 6  # DARTS runs every op of every edge


def test_drnas_samples_from_the_dirichlet_and_regularises_towards_the_prior():
    alphas = [torch.zeros(5), torch.full((5,), 3.0)]
    torch.manual_seed(0)
    weights, active, reg = sample_weights(GradientOptions("drnas", drnas_reg=1.0), alphas, 1.0)
    assert active is None and all(float(w.sum()) == pytest.approx(1.0) for w in weights)
    # elu(0) + 1 = 1 is the prior itself (KL 0); elu(3) + 1 = 4 is not
    kl = torch.distributions.kl_divergence(
        torch.distributions.Dirichlet(torch.full((5,), 4.0)),
        torch.distributions.Dirichlet(torch.ones(5)),
    )
    assert float(reg) == pytest.approx(float(kl), rel=1e-5)
    mean = current_weights("drnas", alphas)
    torch.testing.assert_close(mean[1], torch.full((5,), 0.2))


def test_derivation_excludes_none_as_darts_does_and_entropy_is_zero_when_one_hot():
    net = tiny()
    weights = [F.one_hot(torch.tensor(0), 5).float() * 0.9 + 0.02 for _ in range(6)]
    assert derive_choice(net, weights, exclude_none=False) == [0] * 6
    assert OPS[derive_choice(net, weights, exclude_none=True)[0]] != "none"
    assert GradientOptions("darts").excludes_none and not GradientOptions("gdas").excludes_none
    assert entropy([F.one_hot(torch.tensor(2), 5).float()]) == pytest.approx(0.0, abs=1e-9)
    assert entropy([torch.full((5,), 0.2)]) == pytest.approx(float(torch.log(torch.tensor(5.0))))


@pytest.mark.parametrize("method", ["darts", "gdas", "drnas"])
def test_a_killed_search_resumes_from_its_last_epoch_with_the_same_result(tmp_path, method):
    data = small_digits(96, 64)
    options = GradientOptions(method, epochs=2, batch_size=32, seed=3)
    whole = search_gradient(tiny(), data, options, checkpoint=tmp_path / "a.pt")
    # the same search stopped after its first epoch (as a kill would leave it), then rerun
    part = search_gradient(tiny(), data, options, checkpoint=tmp_path / "b.pt", max_time_s=0)
    assert part.selection["stopped"] == "time" and len(part.history) == 1
    resumed = search_gradient(tiny(), data, options, checkpoint=tmp_path / "b.pt")
    assert [e.epoch for e in resumed.history] == [0, 1]
    assert resumed.arch == whole.arch
    assert resumed.history[-1].weights == whole.history[-1].weights
    # a finished checkpoint returns its result without training
    again = search_gradient(tiny(), data, options, checkpoint=tmp_path / "b.pt")
    assert again.arch == whole.arch and again.seconds == resumed.seconds


def test_a_checkpoint_of_other_options_is_refused(tmp_path):
    data = small_digits(64, 64)
    options = GradientOptions("darts", epochs=1, batch_size=32)
    search_gradient(tiny(), data, options, checkpoint=tmp_path / "c.pt")
    other = dataclasses.replace(options, arch_lr=1e-2)
    with pytest.raises(ConfigError, match="another gradient search"):
        search_gradient(tiny(), data, other, checkpoint=tmp_path / "c.pt")


def test_darts_pt_fixes_every_edge_by_what_its_removal_costs():
    data = small_digits(96, 64)
    options = GradientOptions("darts", epochs=1, batch_size=32, selection="pt", pt_batches=1)
    result = search_gradient(tiny(), data, options)
    drops = result.selection["accuracy_without"]
    assert len(drops) == 6 and sorted(result.selection["order"]) == list(range(6))
    for (dst, src), op in zip(EDGES, result.arch, strict=True):
        costs = drops[f"edge {dst}<-{src}"]
        assert "none" not in costs  # darts leaves none out
        assert costs[op] == min(costs.values())  # kept: the op whose removal hurt most


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "enas"}, "method"),
        ({"method": "gdas", "order": 2}, "order"),
        ({"selection": "best"}, "selection"),
        ({"epochs": 0}, "epochs"),
        ({"tau_min": 20.0}, "tau_min"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        GradientOptions(**kwargs)
