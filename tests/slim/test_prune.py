"""Channel pruning (`normnas.slim.prune_channels`) against hand computation and the unpruned
network: exactly the lowest-|γ| channels go, a pruned chain computes what the unpruned one
computes with those channels' γ and β zeroed, and pruned residual and NAS-Bench-201
networks have the parameter count counted by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normnas.nn.structure import apply_layer_shapes, changed_shapes, layer_shapes
from normnas.slim import SlimError, prune_channels
from normnas.slim.sparsity import bn_sparsity
from normnas.spaces import NB201Space
from normnas.spaces._macro_model import Block, MacroArch, MacroNetwork
from normnas.spaces._nb201_model import NB201Network
from normnas.train import count_params

SHAPE = (1, 8, 8)


def block(width: int, norm: str = "batchnorm", placement: str = "conv_norm_act",
          act: str = "relu", residual: bool = False) -> Block:  # fmt: skip
    return Block(width, 3, norm, placement, act, residual)


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Distinct |γ| (no ties), non-trivial β and running statistics, eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) * 2 - 1)
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def chain() -> nn.Module:
    """No residual: stem (no BN), three blocks with BN after or before the activation."""
    torch.manual_seed(0)
    arch = MacroArch(((block(8), block(12, placement="conv_act_norm", act="gelu")),
                      (block(16, act="silu"),)))  # fmt: skip
    return trained_like(MacroNetwork(arch, (1, 2), stem_width=6, num_classes=10, in_channels=1))


def bn_of(model: nn.Module, conv: str) -> nn.BatchNorm2d:
    """The BatchNorm of a chain block (its conv is `blocks.i.body.0`)."""
    body = model.get_submodule(conv.rsplit(".", 1)[0])
    return next(m for m in body if isinstance(m, nn.BatchNorm2d))


def test_removes_exactly_the_channels_of_smallest_gamma():
    model = chain()
    gammas = [(abs(float(g)), name, c)
              for name in ("blocks.0.body.0", "blocks.1.body.0", "blocks.2.body.0")
              for c, g in enumerate(bn_of(model, name).weight.detach())]  # fmt: skip
    assert len(gammas) == 36  # the stem has no BN: its channels are not candidates
    _, plan = prune_channels(model, 0.4, "bn", input_shape=SHAPE)
    k = round(0.4 * 36)
    expected: dict[str, list[int]] = {}
    for _, name, c in sorted(gammas)[:k]:
        expected.setdefault(name, []).append(c)
    assert plan.candidates == 36 and plan.n_removed == k == 14
    assert plan.removed == {n: sorted(v) for n, v in expected.items()}


def test_pruned_chain_equals_the_unpruned_one_with_those_gammas_and_betas_zeroed():
    model = chain()
    pruned, plan = prune_channels(model, 0.5, "bn", input_shape=SHAPE)
    zeroed = chain()
    with torch.no_grad():
        for name, idxs in plan.removed.items():
            bn = bn_of(zeroed, name)
            bn.weight[idxs] = 0.0
            bn.bias[idxs] = 0.0
    x = torch.randn(32, *SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want, full = pruned(x), zeroed.eval()(x), chain()(x)
    assert torch.allclose(got, want, atol=1e-5, rtol=0)
    assert not torch.allclose(got, full, atol=1e-3)  # the removed channels did matter
    for name, idxs in plan.removed.items():  # and their layers lost exactly those channels
        before = model.get_submodule(name).out_channels
        assert pruned.get_submodule(name).out_channels == before - len(idxs)


def test_residual_network_has_the_parameter_count_counted_by_hand():
    torch.manual_seed(0)
    arch = MacroArch(((block(8, residual=True),), (block(16, residual=True),)))
    model = trained_like(MacroNetwork(arch, (1, 2), stem_width=8, in_channels=1))
    pruned, plan = prune_channels(model, 0.5, "bn", input_shape=SHAPE)
    # two groups: the stem, block 0 and its identity shortcut share channels (8); block 1
    # and its 1x1 projection share theirs (16)
    assert sorted(plan.sizes.values()) == [8, 16]
    kept = {size: size - len(plan.removed.get(name, [])) for name, size in plan.sizes.items()}
    c1, c2 = kept[8], kept[16]
    assert (8 - c1) + (16 - c2) == 12
    by_hand = (
        9 * c1 + c1  # stem 3x3 (1 input channel), bias
        + 9 * c1 * c1 + 2 * c1  # block 0: 3x3 conv (no bias before BN), BN
        + 9 * c1 * c2 + 2 * c2 + c1 * c2 + c2  # block 1: conv, BN, 1x1 projection with bias
        + c2 * 10 + 10  # classifier
    )  # fmt: skip
    assert count_params(pruned) == by_hand
    assert pruned(torch.randn(2, *SHAPE)).shape == (2, 10)


def test_nb201_network_has_the_parameter_count_counted_by_hand():
    # node1 = conv1x1(x), node2 = node1, node3 = conv3x3(node2): a chain inside each cell
    space = NB201Space()
    arch = space.from_str("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|")
    torch.manual_seed(0)
    model = trained_like(NB201Network(arch, C=4, N=1, num_classes=10, in_channels=1))
    pruned, plan = prune_channels(model, 0.5, "bn", input_shape=SHAPE)
    members = {  # the layers whose outputs are each group's channels
        "a": ["stem.0"], "b": ["cells.0.ops.0.1"], "c": ["cells.0.ops.2.1"],
        "d": ["cells.1.conv_a.1"], "e": ["cells.1.conv_b.1", "cells.1.downsample.1"],
        "f": ["cells.2.ops.0.1"], "g": ["cells.2.ops.2.1"], "h": ["cells.3.conv_a.1"],
        "i": ["cells.3.conv_b.1", "cells.3.downsample.1"], "j": ["cells.4.ops.0.1"],
        "k": ["cells.4.ops.2.1"],
    }  # fmt: skip
    group_of = {layer: g for g, layers in members.items() for layer in layers}
    assert {group_of[name] for name in plan.sizes} == set(members)
    assert plan.candidates == 4 * 3 + 8 * 4 + 16 * 4 and plan.n_removed == 54
    c = {group_of[n]: size - len(plan.removed.get(n, [])) for n, size in plan.sizes.items()}
    by_hand = (
        9 * c["a"] + 2 * c["a"]  # stem conv (no bias) and BN
        + c["a"] * c["b"] + 2 * c["b"] + 9 * c["b"] * c["c"] + 2 * c["c"]  # cell 0
        + 9 * c["c"] * c["d"] + 2 * c["d"] + 9 * c["d"] * c["e"] + 2 * c["e"]  # reduction 1
        + c["c"] * c["e"]  # its 1x1 shortcut
        + c["e"] * c["f"] + 2 * c["f"] + 9 * c["f"] * c["g"] + 2 * c["g"]  # cell 2
        + 9 * c["g"] * c["h"] + 2 * c["h"] + 9 * c["h"] * c["i"] + 2 * c["i"] + c["g"] * c["i"]
        + c["i"] * c["j"] + 2 * c["j"] + 9 * c["j"] * c["k"] + 2 * c["k"]  # cell 4
        + 2 * c["k"] + c["k"] * 10 + 10  # last BN, classifier
    )  # fmt: skip
    assert count_params(pruned) == by_hand
    assert pruned(torch.randn(2, *SHAPE)).shape == (2, 10)


@pytest.mark.parametrize("cell", [
    # node 2 has no input (a zeros_like node) and conv 1x1 reads it; node 1 feeds nothing
    "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
])  # fmt: skip
def test_nb201_cells_with_a_zero_node_or_a_dead_op_are_pruned_and_run(cell):
    torch.manual_seed(0)
    model = trained_like(NB201Network(NB201Space().from_str(cell), C=4, N=1, in_channels=1))
    pruned, plan = prune_channels(model, 0.5, "l1", input_shape=SHAPE, min_channels=1)
    assert plan.n_removed == round(0.5 * plan.candidates) > 0
    assert pruned(torch.randn(2, *SHAPE)).shape == (2, 10)


def test_bn_criterion_without_batchnorm_is_one_line_offering_l1():
    torch.manual_seed(0)
    arch = MacroArch(((block(8, "groupnorm"),), (block(16, "groupnorm", residual=True),)))
    model = MacroNetwork(arch, (1, 2), stem_width=8, in_channels=1).eval()
    with pytest.raises(SlimError, match=r"--criterion bn needs BatchNorm scales.*--criterion l1"):
        prune_channels(model, 0.5, "bn", input_shape=SHAPE)
    pruned, plan = prune_channels(model, 0.5, "l1", input_shape=SHAPE)
    assert plan.n_removed == round(0.5 * plan.candidates)
    assert pruned(torch.randn(2, *SHAPE)).shape == (2, 10)
    for m in pruned.modules():  # GroupNorm keeps its channels per group, fewer groups
        if isinstance(m, nn.GroupNorm):
            assert m.num_channels % m.num_groups == 0


def test_a_ratio_that_empties_a_layer_is_refused_by_name_or_keeps_the_minimum():
    model = chain()
    with torch.no_grad():  # block 2's channels are the least important of all
        bn_of(model, "blocks.2.body.0").weight.mul_(1e-3)
    with pytest.raises(SlimError, match=r"every channel of blocks\.2\.body\.0.*--min-channels"):
        prune_channels(model, 0.5, "bn", input_shape=SHAPE)
    pruned, plan = prune_channels(model, 0.5, "bn", input_shape=SHAPE, min_channels=2)
    assert plan.n_removed == 18  # still exactly the share asked: others gave the rest
    assert pruned.get_submodule("blocks.2.body.0").out_channels == 2
    assert any("--min-channels 2" in n and "blocks.2.body.0" in n for n in plan.notes)


def test_sparsity_adds_the_l1_subgradient_to_every_bn_scale():
    model = chain().train()
    x = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(2))

    def grads() -> list[torch.Tensor]:
        model.zero_grad()
        model(x).square().mean().backward()
        return [m.weight.grad.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

    plain = grads()
    with bn_sparsity(model, 0.01) as n:
        penalized = grads()
    assert n == 3
    gammas = [m.weight.detach() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for p, q, g in zip(plain, penalized, gammas, strict=True):
        torch.testing.assert_close(q, p + 0.01 * torch.sign(g))
    assert all(torch.equal(a, b) for a, b in zip(grads(), plain, strict=True))  # hooks gone


def test_layer_shapes_rebuild_the_pruned_network_and_refuse_what_they_cannot():
    model = chain()
    pruned, _ = prune_channels(model, 0.5, "bn", input_shape=SHAPE)
    shapes = changed_shapes(layer_shapes(model), layer_shapes(pruned))
    rebuilt = apply_layer_shapes(chain(), shapes)
    rebuilt.load_state_dict(pruned.state_dict())
    x = torch.randn(4, *SHAPE)
    assert torch.equal(rebuilt.eval()(x), pruned(x))
    with pytest.raises(ValueError, match=r"no layer 'blocks\.9'"):
        apply_layer_shapes(chain(), {"blocks.9": {"out_channels": 3}})
    with pytest.raises(ValueError, match=r"blocks\.0\.body\.0\.out_channels must be an int"):
        apply_layer_shapes(chain(), {"blocks.0.body.0": {"out_channels": "3"}})
    with pytest.raises(ValueError, match="takes only"):
        apply_layer_shapes(chain(), {"blocks.0.body.0": {"padding": 3}})
