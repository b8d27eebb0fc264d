"""NB201Supernet: a sub-network computes exactly what space.build(arch) computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from normnas.oneshot import NB201Supernet, Supernet
from normnas.spaces import NB201Space
from normnas.spaces.nb201 import OPS

from .helpers import randomize_bn

ALL_NONE = ("none",) * 6
CORNER_ARCHS = [ALL_NONE, ("skip_connect",) * 6, ("nor_conv_3x3",) * 6, ("avg_pool_3x3",) * 6]


def _archs(space: NB201Space, rng: np.random.Generator, n: int = 4) -> list[tuple]:
    return CORNER_ARCHS + [space.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("affine", [True, False])
def test_subnet_equals_supernet_in_train_and_eval_mode(
    space: NB201Space, rng: np.random.Generator, affine: bool
) -> None:
    torch.manual_seed(1)
    supernet = NB201Supernet(space, 10, 1, C=4, N=1, affine=affine)
    randomize_bn(supernet)
    x = torch.randn(6, 1, 8, 8)
    for arch in _archs(space, rng):
        supernet.set_arch(arch)
        sub = supernet.subnet(arch)
        assert type(sub) is type(space.build(arch))
        for train in (False, True):
            supernet.train(train)
            sub.train(train)
            torch.testing.assert_close(sub(x), supernet(x), rtol=0, atol=1e-5)


def test_space_build_with_mapped_state_dict_gives_same_outputs(
    supernet: NB201Supernet, space: NB201Space, rng: np.random.Generator
) -> None:
    x = torch.randn(5, 1, 8, 8)
    for arch in _archs(space, rng):
        built = space.build(arch, 10, 1, C=4, N=1)
        built.load_state_dict(supernet.subnet_state_dict(arch), strict=True)
        built.eval()
        supernet.eval()
        supernet.set_arch(arch)
        torch.testing.assert_close(built(x), supernet(x), rtol=0, atol=1e-5)
        # running stats too: train mode updates them identically
        built.train()
        supernet.train()
        built(x)
        supernet(x)
        for key, value in supernet.subnet_state_dict(arch).items():
            torch.testing.assert_close(built.state_dict()[key], value, rtol=0, atol=1e-6)


def test_subnet_is_a_copy(supernet: NB201Supernet) -> None:
    arch = ("nor_conv_3x3",) * 6
    sub = supernet.subnet(arch)
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    assert torch.equal(
        supernet.cells[0].edges[0]["nor_conv_3x3"][1].weight,
        supernet.subnet(arch).cells[0].ops[0][1].weight,
    )


def test_path_modules_are_exactly_the_modules_forward_runs(
    supernet: NB201Supernet, space: NB201Space, rng: np.random.Generator
) -> None:
    ran: set[nn.Module] = set()
    hooks = [
        m.register_forward_hook(lambda mod, *_: ran.add(mod))
        for m in supernet.modules()
        if not list(m.children())
    ]
    for arch in _archs(space, rng, 4):
        ran.clear()
        supernet.set_arch(arch)
        supernet(torch.randn(2, 1, 8, 8))
        listed = {m for top in supernet.path_modules(arch) for m in top.modules()}
        assert ran == {m for m in listed if not list(m.children())}
    for h in hooks:
        h.remove()


def test_fair_archs_take_every_op_once_per_edge(
    supernet: NB201Supernet, rng: np.random.Generator
) -> None:
    archs = supernet.fair_archs(rng)
    assert len(archs) == len(OPS)
    for edge in range(6):
        assert sorted(a[edge] for a in archs) == sorted(OPS)
    assert archs != supernet.fair_archs(rng)  # a fresh permutation each call


def test_indicator_norms_are_the_conv_ops_bns(supernet: NB201Supernet) -> None:
    arch = ("nor_conv_1x1", "none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3", "none")
    norms = supernet.indicator_norms(arch)
    assert len(norms) == 6 * 3  # 6 edges x 3 cells (N=1)
    cell0 = supernet.cells[0]
    assert norms[0] == [cell0.edges[0]["nor_conv_1x1"][2]]
    assert norms[3] == [cell0.edges[3]["nor_conv_3x3"][2]]
    assert [len(n) for n in norms[:6]] == [1, 0, 0, 1, 0, 0]


def test_protocol_and_bad_input(supernet: NB201Supernet) -> None:
    assert isinstance(supernet, Supernet)
    fresh = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    with pytest.raises(RuntimeError, match="set_arch"):
        fresh(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="edge_3<-2='conv_5x5' is not one of"):
        supernet.set_arch(("none",) * 5 + ("conv_5x5",))
