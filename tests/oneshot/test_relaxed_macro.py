"""The relaxed macro supernet: one-hot weights are the sub-network, soft weights train all."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normnas.oneshot.relaxed_macro import RelaxedMacro
from normnas.oneshot.supernet_macro import MacroSupernet
from normnas.spaces import MacroSpace
from normnas.spaces._macro_model import Block, MacroArch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # tiny tensors: a second intra-op thread only adds synchronization on a loaded machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_space() -> MacroSpace:
    """Two stages on 8x8 inputs, every block field and depth with more than one choice;
    width 6 in both stages gives identity and projection residuals between equal widths."""
    return MacroSpace(
        stages=[
            {"widths": [4, 6], "min_blocks": 1, "max_blocks": 2, "stride": 1},
            {"widths": [6, 12], "min_blocks": 1, "max_blocks": 2, "stride": 2},
        ],
        kernels=[1, 3],
        activations=["relu", "gelu"],
        dropout=[0.0],
        stem_width=4,
    )


# norm_act_conv after a width change, every norm kind, both residual forms
HAND_ARCH = MacroArch(
    stages=(
        (
            Block(6, 3, "groupnorm", "conv_act_norm", "gelu", True),
            Block(4, 1, "layernorm", "norm_act_conv", "relu", True),
        ),
        (
            Block(6, 3, "batchnorm", "norm_act_conv", "relu", True),
            Block(6, 1, "instancenorm", "conv_norm_act", "gelu", True),
        ),
    )
)


def make(affine: bool = True, track: bool = True, seed: int = 0) -> RelaxedMacro:
    """A float64 relaxed supernet with non-trivial norm parameters and BN statistics (drawn
    in float32, so the float32 `space.build` sub-network holds them exactly)."""
    torch.manual_seed(seed)
    net = RelaxedMacro(small_space(), 10, 1, affine=affine, track_running_stats=track)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if getattr(m, "running_mean", None) is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if "Norm" in type(m).__name__ and getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net.double()


def onehots(net: RelaxedMacro, arch: MacroArch) -> list[torch.Tensor]:
    return [
        F.one_hot(torch.tensor(c), len(d.options)).double()
        for c, d in zip(net.choice_of(arch), net.decisions, strict=True)
    ]


def archs() -> list[MacroArch]:
    rng = np.random.default_rng(3)
    return [HAND_ARCH, *(small_space().sample(rng) for _ in range(7))]


def test_decisions_are_the_fields_with_choices_and_depths():
    net = make()
    names = [d.name for d in net.decisions]
    # s0.b0.width has 2 choices; head.dropout has one and is never relaxed
    assert names[:3] == ["s0.depth", "s0.b0.width", "s0.b0.kernel"]
    assert len(names) == 2 * (1 + 2 * 6)
    assert net.decisions[3].options == (
        "batchnorm",
        "groupnorm",
        "instancenorm",
        "layernorm",
        "none",
    )
    assert net.decisions[0].options == ("1", "2")
    for arch in archs():
        assert net.arch_of(net.choice_of(arch)) == arch


@pytest.mark.parametrize(("affine", "track"), [(True, True), (False, False), (False, True)])
def test_one_hot_weights_compute_the_built_sub_network(affine, track):
    net = make(affine, track)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    # eval mode first: each train-mode forward below moves the running statistics
    modes = [False, True] if track else [True]
    for arch in archs():
        for train in modes:
            sub = net.subnet(arch).double()
            net.train(train), sub.train(train)
            expected = sub(x)
            torch.testing.assert_close(net(x, onehots(net, arch)), expected, rtol=1e-5, atol=1e-9)
            # GDAS's form: only the chosen options run, the same function
            active = net.choice_of(arch)
            got = net(x, onehots(net, arch), active)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-9)


def test_without_running_stats_the_sub_network_has_initial_statistics():
    net = make(track=False)
    sub = net.subnet(HAND_ARCH)
    bns = [m for m in sub.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(float(bn.running_var.min()) == 1.0 for bn in bns)
    assert not any(isinstance(m, nn.BatchNorm2d) and m.running_mean is not None
                   for m in net.modules())  # fmt: skip


def test_soft_weights_give_gradients_to_every_option():
    net = make()
    torch.manual_seed(2)
    logits = [torch.randn(len(d.options), dtype=torch.float64) for d in net.decisions]
    weights = [torch.softmax(a, 0).requires_grad_(True) for a in logits]
    out = net(torch.randn(4, 1, 8, 8, dtype=torch.float64), weights)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    out.square().sum().backward()
    for d, w in zip(net.decisions, weights, strict=True):
        assert w.grad is not None and torch.isfinite(w.grad).all(), d.name
        assert (w.grad != 0).all(), f"{d.name}: {w.grad}"
    assert all(p.grad is not None for p in net.stem.parameters())


def test_soft_weights_are_the_mix_of_a_single_decision():
    """With every other decision one-hot, soft norm weights in the last block, whose norm
    comes last (conv_act_norm), give the weighted sum of the sub-networks that differ only
    in that norm: the pooled features are linear in the block's output."""
    net = make()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    last = dataclasses.replace(HAND_ARCH.stages[1][1], placement="conv_act_norm")

    def with_norm(kind: str) -> MacroArch:
        block = dataclasses.replace(last, norm=kind)
        return MacroArch((HAND_ARCH.stages[0], (HAND_ARCH.stages[1][0], block)))

    d = [dec.name for dec in net.decisions].index("s1.b1.norm")
    w_norm = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25], dtype=torch.float64)
    weights = onehots(net, with_norm("none"))
    weights[d] = w_norm
    feats: dict[str, torch.Tensor] = {}
    net.pool.register_forward_hook(lambda m, i, o: feats.__setitem__("pooled", o))
    expected = torch.zeros(())
    for k, kind in enumerate(net.decisions[d].options):
        net(x, onehots(net, with_norm(kind)))
        expected = expected + w_norm[k] * feats["pooled"]
    net(x, weights)
    torch.testing.assert_close(feats["pooled"], expected)


def test_active_runs_only_the_chosen_norms_and_passes_gradients():
    net = make()
    calls: list[nn.Module] = []
    for m in net.modules():
        if "Norm" in type(m).__name__:
            m.register_forward_hook(lambda mod, i, o: calls.append(mod))
    arch = HAND_ARCH
    active = net.choice_of(arch)
    logits = [torch.zeros(len(d.options), dtype=torch.float64, requires_grad=True)
              for d in net.decisions]  # fmt: skip
    hard = []
    for a, logit in zip(active, logits, strict=True):
        soft = torch.softmax(logit, 0)
        hard.append(F.one_hot(torch.tensor(a), len(soft)).double() - soft.detach() + soft)
    out = net(torch.randn(4, 1, 8, 8, dtype=torch.float64), hard, active)
    expected = [m for m in net.path_modules(arch) if "Norm" in type(m).__name__]
    assert len(expected) == 4 and calls == expected
    out.sum().backward()
    assert all(g.grad is not None and torch.isfinite(g.grad).all() for g in logits)
    assert sum(float(g.grad.abs().sum()) for g in logits) > 0


def test_architecture_weights_are_not_module_parameters():
    net = make()
    plain = RelaxedMacro(small_space(), 10, 1)
    reference = MacroSupernet(small_space(), 10, 1)
    names = [n for n, _ in plain.named_parameters()]
    assert names == [n for n, _ in reference.named_parameters()]
    assert len(list(net.parameters())) == len(names)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda w: w[:-1], "expected 26 vectors"),
        (lambda w: [*w[:3], torch.ones(4), *w[4:]], "'s0.b0.norm'"),
    ],
)
def test_bad_weights_are_one_line_errors_naming_the_decision(bad, message):
    net = RelaxedMacro(small_space(), 10, 1)
    weights = [torch.ones(len(d.options)) / len(d.options) for d in net.decisions]
    with pytest.raises(ValueError, match=message) as err:
        net(torch.randn(2, 1, 8, 8), bad(weights))
    assert "\n" not in str(err.value)


def test_bad_choice_is_a_one_line_error():
    net = RelaxedMacro(small_space(), 10, 1)
    with pytest.raises(ValueError, match=r"choice of 's0\.depth': 5"):
        net.arch_of([5] + [0] * (len(net.decisions) - 1))


def test_only_nb201_edges_have_a_zero_option():
    from normnas.oneshot.relaxed_nb201 import RelaxedNB201

    macro = RelaxedMacro(small_space(), 10, 1)
    assert all(d.zero is None for d in macro.decisions)  # the norm "none" is the identity
    nb201 = RelaxedNB201(C=2, N=1)
    assert all(d.options[d.zero] == "none" for d in nb201.decisions if d.zero is not None)
    assert len([d for d in nb201.decisions if d.zero is not None]) == 6
