"""The relaxed NB201 supernet: one-hot weights are the sub-network, soft weights the sum."""

import pytest
import torch
import torch.nn.functional as F

from normnas.oneshot.relaxed_nb201 import RelaxedNB201
from normnas.spaces import NB201Space
from normnas.spaces.nb201 import OPS

ARCHS = [
    ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3"),
    ("skip_connect",) * 6,
    ("none", "nor_conv_1x1", "none", "avg_pool_3x3", "skip_connect", "none"),
]


def onehots(net: RelaxedNB201, arch, dtype=torch.float64) -> list[torch.Tensor]:
    return [F.one_hot(torch.tensor(i), len(OPS)).to(dtype) for i in net.choice_of(arch)]


def make(track: bool, affine: bool = False, seed: int = 0) -> RelaxedNB201:
    torch.manual_seed(seed)
    net = RelaxedNB201(NB201Space(), 10, 1, C=4, N=1, affine=affine, track_running_stats=track)
    return net.double()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("affine", [False, True])
def test_one_hot_weights_compute_the_built_sub_network(arch, affine):
    net = make(track=False, affine=affine)
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    sub = net.subnet(arch).double()
    assert type(sub) is type(NB201Space().build(arch, 10, 1, C=4, N=1))
    net.train(), sub.train()
    torch.testing.assert_close(net(x, onehots(net, arch)), sub(x), rtol=1e-10, atol=1e-10)


def test_with_running_stats_eval_mode_matches_too():
    net = make(track=True)
    arch = ARCHS[0]
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    net.train()
    for _ in range(3):  # give the running statistics values of their own
        net(torch.randn(6, 1, 8, 8, dtype=torch.float64) * 2 + 1, onehots(net, arch))
    sub = net.subnet(arch).double()
    net.eval(), sub.eval()
    # space.build makes float32 modules: the copied running statistics were rounded once
    torch.testing.assert_close(net(x, onehots(net, arch)), sub(x), rtol=1e-6, atol=1e-6)


def test_soft_weights_are_the_weighted_sum_of_the_ops_on_an_edge():
    net = make(track=False)
    torch.manual_seed(1)
    weights = [torch.softmax(torch.randn(5, dtype=torch.float64), 0) for _ in range(6)]
    cell = net.cells[0]
    x = torch.randn(4, 4, 8, 8, dtype=torch.float64)
    out = net._cell(cell, x, weights, None)

    # by hand: node1 = mix(e0, x); node2 = mix(e1, x) + mix(e2, n1); node3 = ...
    def edge(e, inp):
        ops = cell.edges[e]
        return sum(weights[e][k] * ops[op](inp) for k, op in enumerate(OPS) if op != "none")

    n1 = edge(0, x)
    n2 = edge(1, x) + edge(2, n1)
    n3 = edge(3, x) + edge(4, n1) + edge(5, n2)
    torch.testing.assert_close(out, n3)


def test_active_runs_one_op_per_edge_and_passes_gradients_to_its_weight():
    net = make(track=False)
    calls: list[str] = []
    for e, ops in enumerate(net.cells[0].edges):
        for name, module in ops.items():
            module.register_forward_hook(lambda m, i, o, tag=f"{e}:{name}": calls.append(tag))
    active = [3, 1, 2, 4, 0, 3]
    logits = torch.zeros(6, 5, dtype=torch.float64, requires_grad=True)
    soft = torch.softmax(logits, 1)
    hard = F.one_hot(torch.tensor(active), 5).double() - soft.detach() + soft
    out = net(torch.randn(4, 1, 8, 8, dtype=torch.float64), list(hard), active)
    expected = sorted(f"{e}:{OPS[a]}" for e, a in enumerate(active) if OPS[a] != "none")
    assert sorted(calls) == expected
    out.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_architecture_weights_are_not_module_parameters():
    net = make(track=False)
    assert all(p.ndim != 1 or p.numel() != 5 for p in net.parameters())
    names = {n for n, _ in net.named_parameters()}
    assert not any("alpha" in n or "arch" in n for n in names)


@pytest.mark.parametrize(
    ("weights", "active", "message"),
    [
        ([torch.ones(5)] * 5, None, "expected 6 vectors"),
        ([torch.ones(5)] * 5 + [torch.ones(4)], None, "'edge 3<-2'"),
        ([torch.ones(5)] * 6, [0, 0, 0, 0, 0, 7], "active of 'edge 3<-2'"),
    ],
)
def test_bad_weights_are_one_line_errors_naming_the_decision(weights, active, message):
    net = RelaxedNB201(NB201Space(), 10, 1, C=4, N=1)
    with pytest.raises(ValueError, match=message) as err:
        net(torch.randn(2, 1, 8, 8), weights, active)
    assert "\n" not in str(err.value)
