"""MacroSupernet: a sub-network computes exactly what space.build(arch) computes, and the
weights it shares are one storage."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from normnas.nn import recalibrate_bn
from normnas.oneshot import Supernet, batch_statistics, bn_score, recalibrated
from normnas.oneshot.supernet_macro import MacroSupernet, SlicedConv2d
from normnas.spaces import MacroSpace
from normnas.spaces._macro_model import Block, MacroArch

from .helpers import randomize_bn


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # the tensors here are tiny: a second intra-op thread only adds synchronization, which
    # on a loaded 2-core machine slows these tests a hundredfold
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_space(stem_width: int = 4) -> MacroSpace:
    """Two stages on 8x8 inputs; width 36 makes GroupNorm use 18 groups (not one per channel),
    and width 6 in both stages makes a strided residual of equal widths (a projection)."""
    return MacroSpace(
        stages=[
            {"widths": [4, 6], "min_blocks": 1, "max_blocks": 2, "stride": 1},
            {"widths": [6, 36], "min_blocks": 1, "max_blocks": 2, "stride": 2},
        ],
        kernels=[1, 3],
        dropout=[0.0, 0.3],
        stem_width=stem_width,
    )


def randomize_norms(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and norm affine parameters, so a wrong mapping shows."""
    randomize_bn(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ in ("GroupNorm", "InstanceNorm2d", "ChannelLayerNorm"):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def make_supernet(space: MacroSpace, affine: bool = True, in_channels: int = 3) -> MacroSupernet:
    torch.manual_seed(0)
    net = MacroSupernet(space, num_classes=5, in_channels=in_channels, affine=affine)
    randomize_norms(net)
    return net


def uniform_arch(space: MacroSpace, widest: bool = False, **fields: Any) -> MacroArch:
    """Every stage at its deepest, every block its stage's narrowest (or widest) width and
    the first choices but for `fields`."""
    stages = tuple(
        tuple(
            dataclasses.replace(
                space.default_block(i),
                **{"width": max(spec.widths) if widest else min(spec.widths), **fields},
            )
            for _ in range(spec.max_blocks)
        )
        for i, spec in enumerate(space.stages)
    )
    return MacroArch(stages, 0.0)


def corner_archs(space: MacroSpace) -> list[MacroArch]:
    """Every (norm, placement) on every block, with a residual and the widest widths."""
    return [
        uniform_arch(space, widest=True, norm=norm, placement=placement, residual=True)
        for norm in space.norms
        for placement in space.placements
    ]


def some_archs(space: MacroSpace, n: int, seed: int = 0) -> list[MacroArch]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def _outputs(model: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # the same dropout mask for both networks
    return model(x)


@pytest.mark.parametrize(("affine", "stem_width"), [(True, 4), (False, 4), (True, 0)])
def test_subnet_equals_supernet_in_train_and_eval_mode(affine: bool, stem_width: int) -> None:
    space = small_space(stem_width)
    supernet = make_supernet(space, affine)
    x = torch.randn(6, 3, 8, 8)
    # all width 6 with residuals: the strided first block of stage 1 keeps the width but
    # still needs the projection
    sixes = MacroArch(uniform_arch(space, residual=True, width=6).stages, 0.3)
    for arch in [sixes, *corner_archs(space), *some_archs(space, 25)]:
        supernet.set_arch(arch)
        sub = supernet.subnet(arch)
        assert type(sub) is type(space.build(arch))
        for train in (False, True):
            supernet.train(train)
            sub.train(train)
            expected = _outputs(sub, x, seed=3)
            torch.testing.assert_close(_outputs(supernet, x, seed=3), expected, rtol=0, atol=1e-5)
        # the train-mode pass moved the BN statistics of both the same way
        state = sub.state_dict()
        for key, value in supernet.subnet_state_dict(arch).items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=1e-6, msg=key)


def test_space_build_with_mapped_state_dict_gives_same_outputs() -> None:
    space = small_space()
    supernet = make_supernet(space).eval()
    x = torch.randn(4, 3, 8, 8)
    for arch in some_archs(space, 25, seed=1):
        built = space.build(arch, 5, 3)
        built.load_state_dict(supernet.subnet_state_dict(arch), strict=True)
        supernet.set_arch(arch)
        torch.testing.assert_close(built.eval()(x), supernet(x), rtol=0, atol=1e-5)


def test_groupnorm_of_a_wide_block_uses_the_built_group_count() -> None:
    space = small_space()
    supernet = make_supernet(space)
    arch = uniform_arch(space, widest=True, norm="groupnorm")
    gn = supernet.stages[1][0].norm(arch.stages[1][0], 6)
    assert isinstance(gn, nn.GroupNorm) and (gn.num_groups, gn.num_channels) == (18, 36)
    built_gn = space.build(arch, 5, 3).blocks[2].body[1]
    assert (built_gn.num_groups, built_gn.num_channels) == (18, 36)


def test_subnet_is_a_copy() -> None:
    space = small_space()
    supernet = make_supernet(space)
    arch = uniform_arch(space)
    before = supernet.subnet_state_dict(arch)
    with torch.no_grad():
        for p in supernet.subnet(arch).parameters():
            p.add_(1.0)
    for key, value in supernet.subnet_state_dict(arch).items():
        assert torch.equal(value, before[key]), key


def _one_sgd_step(supernet: MacroSupernet, arch: MacroArch, x: torch.Tensor) -> None:
    supernet.train()
    supernet.set_arch(arch)
    supernet.zero_grad()
    supernet(x).square().mean().backward()
    with torch.no_grad():
        for p in supernet.parameters():
            if p.grad is not None:
                p.sub_(0.5 * p.grad)


def test_archs_sharing_a_conv_share_its_storage() -> None:
    space = small_space()
    supernet = make_supernet(space)
    # a and b differ in every choice but the kernel (and the depth): same conv weights
    a = uniform_arch(space, kernel=3, norm="batchnorm", placement="conv_norm_act")
    b_blocks = tuple(
        tuple(
            Block(max(spec.widths), 3, "groupnorm", "norm_act_conv", "gelu", True)
            for _ in range(spec.max_blocks)
        )
        for spec in space.stages
    )
    b = MacroArch(b_blocks, 0.3)
    x = torch.randn(8, 3, 8, 8)
    supernet.eval().set_arch(b)
    b_before = supernet(x).detach()
    k1_before = supernet.stages[0][0].convs["1"].weight.detach().clone()
    _one_sgd_step(supernet, a, x)
    supernet.eval().set_arch(b)
    assert (supernet(x) - b_before).abs().max() > 1e-3
    # the 1x1 conv was not on a's path: untouched; a's 3x3 conv moved only in its slice
    assert torch.equal(supernet.stages[0][0].convs["1"].weight, k1_before)
    conv = supernet.stages[0][1].convs["3"]
    assert isinstance(conv, SlicedConv2d)
    grad = conv.weight.grad
    assert grad is not None and grad[:4, :4].abs().sum() > 0
    assert grad[4:].abs().sum() == 0 and grad[:, 4:].abs().sum() == 0


def test_parameter_count_of_a_tiny_space_by_hand() -> None:
    space = MacroSpace(
        stages=[{"widths": [2, 4], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
        kernels=[3],
        norms=["batchnorm", "none"],
        activations=["relu"],
        dropout=[0.0],
        stem_width=0,
    )
    # conv 4x1x3x3 + bias 4 = 40; BN after the conv at widths 2 and 4, twice (conv_norm_act,
    # conv_act_norm): 2 x (4 + 8) = 24; BN on the 1 input channel (norm_act_conv): 2;
    # 1x1 projection 4x1 + 4 = 8; classifier 4x2 + 2 = 10
    count = sum(p.numel() for p in MacroSupernet(space, 2, 1).parameters())
    assert count == 40 + 24 + 2 + 8 + 10
    no_affine = sum(p.numel() for p in MacroSupernet(space, 2, 1, affine=False).parameters())
    assert no_affine == 40 + 8 + 10


def test_supernet_holds_every_arch_in_far_fewer_parameters() -> None:
    space = small_space()
    supernet = MacroSupernet(space, 5, 3)
    shared = sum(p.numel() for p in supernet.parameters())
    sizes = [
        sum(p.numel() for p in space.build(a, 5, 3).parameters()) for a in some_archs(space, 200)
    ]
    widest = corner_archs(space)
    largest = max(sum(p.numel() for p in space.build(a, 5, 3).parameters()) for a in widest)
    assert largest <= shared < sum(sizes) / 20


def test_path_modules_are_exactly_the_modules_forward_runs() -> None:
    space = small_space()
    supernet = make_supernet(space)
    ran: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, *_: ran.append(mod))
        for m in supernet.modules()
        if not list(m.children())
    ]
    for arch in corner_archs(space)[:6] + some_archs(space, 20, seed=2):
        ran.clear()
        supernet.set_arch(arch)
        supernet(torch.randn(2, 3, 8, 8))
        listed = [m for top in supernet.path_modules(arch) for m in top.modules()]
        assert set(ran) == {m for m in listed if not list(m.children())}
        # the indicator norms are the BNs the path runs, block by block
        bns = [m for m in ran if isinstance(m, nn.BatchNorm2d)]
        indicator = supernet.indicator_norms(arch)
        assert len(indicator) == sum(len(s) for s in arch.stages)
        assert [bn for norms in indicator for bn in norms] == bns
        blocks = [b for s in arch.stages for b in s]
        assert [len(n) for n in indicator] == [int(b.norm == "batchnorm") for b in blocks]
    for h in hooks:
        h.remove()


def test_indicator_norm_of_norm_act_conv_sees_the_previous_width() -> None:
    space = small_space()
    supernet = make_supernet(space)
    blocks = (
        (Block(6, 3, "batchnorm", "conv_norm_act", "relu", False),),
        (
            Block(36, 3, "batchnorm", "norm_act_conv", "relu", False),
            Block(6, 1, "layernorm", "conv_act_norm", "silu", True),
        ),
    )
    norms = supernet.indicator_norms(MacroArch(blocks, 0.0))
    assert [[bn.num_features for bn in n] for n in norms] == [[6], [6], []]
    assert norms[0][0] is supernet.stages[0][0].norms["conv_norm_act"]["batchnorm"]["6"]
    assert norms[1][0] is supernet.stages[1][0].norms["norm_act_conv"]["batchnorm"]["6"]


def test_bn_score_of_the_macro_supernet_by_hand() -> None:
    space = small_space()
    supernet = make_supernet(space)
    blocks = (
        (
            Block(4, 3, "batchnorm", "conv_norm_act", "relu", False),
            Block(6, 3, "groupnorm", "conv_norm_act", "relu", False),
        ),
        (Block(6, 1, "batchnorm", "conv_act_norm", "gelu", True),),
    )
    with torch.no_grad():
        supernet.stages[0][0].norms["conv_norm_act"]["batchnorm"]["4"].weight.copy_(
            torch.tensor([1.0, -2.0, 3.0, -4.0])
        )
        supernet.stages[1][0].norms["conv_act_norm"]["batchnorm"]["6"].weight.fill_(-0.5)
    assert bn_score(supernet, MacroArch(blocks, 0.0)) == pytest.approx(2.5 + 0.5)


def test_fair_archs_use_every_choice_of_each_decision() -> None:
    space = small_space()
    supernet = MacroSupernet(space, 5, 3)
    rng = np.random.default_rng(0)
    archs = supernet.fair_archs(rng)
    choices = {n: d.choices for n, d in space.distributions().items()}
    k = max(len(c) for c in choices.values())
    assert len(archs) == k == len(space.norms)
    params = [space.to_params(a) for a in archs]

    def balanced(values: list[object], allowed: tuple[object, ...]) -> None:
        counts = Counter(values)
        assert set(counts) <= set(allowed)
        if len(values) >= len(allowed):
            assert set(counts) == set(allowed)
        assert max(counts.values()) - min(counts.values()) <= 1

    for name, allowed in choices.items():
        stage_slot = name.split(".")
        if len(stage_slot) == 3:  # a block field: only the archs where the slot runs count
            slot = int(stage_slot[1][1:])
            values = [p[name] for p in params if p[f"{stage_slot[0]}.depth"] > slot]
        else:
            values = [p[name] for p in params]
        balanced(values, allowed)
    # the first slot of each stage always runs: every norm exactly once
    assert sorted(p["s1.b0.norm"] for p in params) == sorted(space.norms)
    assert [space.to_str(a) for a in archs] != [space.to_str(a) for a in supernet.fair_archs(rng)]


def test_recalibrated_path_has_the_statistics_of_the_recalibrated_subnet() -> None:
    space = small_space()
    supernet = make_supernet(space)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    batches = [torch.randn(16, 3, 8, 8) for _ in range(3)]
    arch = uniform_arch(space, norm="batchnorm", placement="norm_act_conv", residual=True)
    reference = recalibrate_bn(supernet.subnet(arch), batches).state_dict()
    with recalibrated(supernet, arch, batches):
        for key, value in supernet.subnet_state_dict(arch).items():
            torch.testing.assert_close(value, reference[key], rtol=0, atol=1e-5, msg=key)
    for key, value in supernet.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_batch_statistics_of_the_path_match_the_subnet_in_train_mode() -> None:
    space = small_space()
    supernet = make_supernet(space).eval()
    x = torch.randn(8, 3, 8, 8)
    for arch in corner_archs(space)[:3] + some_archs(space, 5, seed=4):
        arch = MacroArch(arch.stages, 0.0)  # no dropout: the subnet runs in train mode
        sub = supernet.subnet(arch).train()
        supernet.set_arch(arch)
        with batch_statistics(supernet.path_modules(arch)):
            torch.testing.assert_close(supernet(x), sub(x), rtol=0, atol=1e-5)


def test_protocol_and_bad_input() -> None:
    space = small_space()
    supernet = MacroSupernet(space, 5, 3)
    assert isinstance(supernet, Supernet)
    with pytest.raises(RuntimeError, match="set_arch"):
        supernet(torch.randn(2, 3, 8, 8))
    narrow = uniform_arch(space)
    wrong = MacroArch((narrow.stages[0], narrow.stages[0]), 0.0)
    with pytest.raises(ValueError, match=r"s1\.b0\.width=4 is not one of \[6, 36\]"):
        supernet.set_arch(wrong)
