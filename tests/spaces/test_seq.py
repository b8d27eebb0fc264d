"""SeqSpace: the SearchSpace contract, every norm x placement builds and runs on (N, C, T),
and conv / transformer blocks compute what their definitions say on a tiny input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from normnas.spaces import SearchSpace, SeqArch, SeqBlock, SeqSpace
from normnas.spaces._seq_model import SEQ_PLACEMENTS, AttnSeqBlock, ConvSeqBlock
from normnas.spaces.seq import SEQ_NORMS

space = SeqSpace()
SMALL = SeqSpace(
    stages=[{"widths": [8], "min_blocks": 1, "max_blocks": 2, "pool": 1},
            {"widths": [16], "min_blocks": 1, "max_blocks": 1, "pool": 2}],
    kernels=[3], dilations=[1, 2], heads=[2], mlp_ratios=[2], norms=["layernorm", "none"],
    placements=["post", "pre"], dropout=[0.0],
)  # fmt: skip


def test_contract_round_trips_and_moves() -> None:
    assert isinstance(space, SearchSpace)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)]
    assert len(set(archs)) == 20
    for arch in archs:
        assert space.from_str(space.to_str(arch)) == arch
        assert space.from_params(space.to_params(arch)) == arch
        assert space.from_params(space.full_params(arch)) == arch
        child = space.mutate(arch, rng)
        assert space.canonical(child) != space.canonical(arch)
    # neighbors: exactly the distinct one-choice moves, none equal to the arch
    near = space.neighbors(archs[0])
    assert len(set(near)) == len(near) and space.canonical(archs[0]) not in near


def test_suggest_records_only_active_parameters() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        trial = study.ask()
        arch = space.suggest(trial)
        assert trial.params == space.to_params(arch)
        for j, block in enumerate(arch.stages[0]):
            other = {"conv": "heads", "attn": "kernel"}[block.kind]
            assert f"s0.b{j}.{other}" not in trial.params
        study.tell(trial, 0.0)
    assert set(space.distributions()) >= set(trial.params)


def test_size_counts_the_canonical_classes_of_a_small_space() -> None:
    # enumerate every parameter combination, keep distinct canonical archs
    choices = {n: d.choices for n, d in SMALL.distributions().items()}
    names = list(choices)
    seen = set()
    for values in itertools.product(*(choices[n] for n in names)):
        seen.add(SMALL.canonical(SMALL.from_params(dict(zip(names, values, strict=True)))))
    assert len(seen) == SMALL.size()


def test_canonical_merges_placements_without_a_norm() -> None:
    def arch(conv: str, attn: str) -> SeqArch:
        return SeqArch(
            (
                (SeqBlock("conv", 32, "none", conv, kernel=3, dilation=1),),
                (SeqBlock("attn", 64, "none", attn, heads=2, mlp_ratio=2),),
            ),
            0.0,
        )

    post, pre = arch("post", "pre"), arch("pre", "post_act")
    assert space.canonical(post) == space.canonical(pre)
    torch.manual_seed(0)
    a = space.build(post, 3, 2).eval()
    torch.manual_seed(0)
    b = space.build(pre, 3, 2).eval()
    x = torch.randn(2, 2, 20)
    torch.testing.assert_close(a(x), b(x))  # same weights, same function


@pytest.mark.parametrize(("norm", "placement"), list(itertools.product(SEQ_NORMS, SEQ_PLACEMENTS)))
def test_every_norm_and_placement_trains_a_step_on_sequences(norm: str, placement: str) -> None:
    blocks = (SeqBlock("conv", 32, norm, placement, kernel=5, dilation=2),
              SeqBlock("attn", 32, norm, placement, heads=4, mlp_ratio=2))  # fmt: skip
    arch = SeqArch((blocks, (SeqBlock("attn", 64, norm, placement, heads=2, mlp_ratio=4),)), 0.2)
    model = space.build(arch, num_classes=3, in_channels=2).train()
    out = model(torch.randn(4, 2, 9))  # odd length: the pool keeps 5 steps
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    out.sum().backward()


def test_bad_configs_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        SeqSpace(heads=[3])
    with pytest.raises(ValueError, match="unknown key 'strides'"):
        SeqSpace.from_dict({"strides": [1]})
    with pytest.raises(ValueError, match="unknown norm 'bogus'"):
        SeqSpace(norms=["bogus"])
    with pytest.raises(ValueError, match="not one of"):
        space.from_str("[conv-w33-k3-d1-layernorm-pre] [conv-w64-k3-d1-layernorm-pre] dropout=0.0")
    assert SeqSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()


# -- the blocks against hand-written computations --------------------------------------------
def _ln(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the channels (dim 1) at each time step, gamma 1, beta 0."""
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


def _attention_by_hand(block: AttnSeqBlock, x: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head, from the 1x1 convs' weights, step by step."""
    n, c, _ = x.shape
    heads = block.attn.heads
    d = c // heads
    w = block.attn.qkv.weight[:, :, 0]
    qkv = torch.einsum("oc,nct->not", w, x) + block.attn.qkv.bias[None, :, None]
    out = torch.zeros_like(x)
    for b in range(n):
        for h in range(heads):
            q = qkv[b, h * d : (h + 1) * d].T  # (T, d)
            k = qkv[b, c + h * d : c + (h + 1) * d].T
            v = qkv[b, 2 * c + h * d : 2 * c + (h + 1) * d].T
            att = torch.softmax(q @ k.T / math.sqrt(d), dim=-1)  # (T, T): rows sum to 1
            out[b, h * d : (h + 1) * d] = (att @ v).T
    wo = block.attn.out.weight[:, :, 0]
    return torch.einsum("oc,nct->not", wo, out) + block.attn.out.bias[None, :, None]


def _mlp_by_hand(block: AttnSeqBlock, x: torch.Tensor) -> torch.Tensor:
    first, _, second = block.mlp
    h = torch.einsum("oc,nct->not", first.weight[:, :, 0], x) + first.bias[None, :, None]
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # GELU
    return torch.einsum("oc,nct->not", second.weight[:, :, 0], h) + second.bias[None, :, None]


@pytest.mark.parametrize("placement", SEQ_PLACEMENTS)
def test_transformer_block_computes_its_definition(placement: str) -> None:
    torch.manual_seed(0)
    block = AttnSeqBlock(4, SeqBlock("attn", 4, "layernorm", placement, heads=2, mlp_ratio=2))
    x = torch.randn(2, 4, 5)
    attn = lambda z: _attention_by_hand(block, z)  # noqa: E731
    mlp = lambda z: _mlp_by_hand(block, z)  # noqa: E731
    if placement == "pre":  # x + f(LN(x)), twice
        h = x + attn(_ln(x))
        want = h + mlp(_ln(h))
    elif placement == "post":  # LN(x + f(x)), twice (Vaswani et al.)
        h = _ln(x + attn(x))
        want = _ln(h + mlp(h))
    else:  # x + LN(f(x)), twice
        h = x + _ln(attn(x))
        want = h + _ln(mlp(h))
    torch.testing.assert_close(block(x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("placement", SEQ_PLACEMENTS)
def test_conv_block_computes_its_definition(placement: str) -> None:
    torch.manual_seed(0)
    block = ConvSeqBlock(3, SeqBlock("conv", 4, "layernorm", placement, kernel=3, dilation=2))
    x = torch.randn(2, 3, 7)
    conv = next(m for m in block.body if isinstance(m, nn.Conv1d))
    shortcut = block.shortcut

    def c(z: torch.Tensor) -> torch.Tensor:  # the dilated conv, padded to keep the length
        zp = nn.functional.pad(z, (2, 2))
        taps = [zp[:, :, i * 2 : i * 2 + 7] for i in range(3)]
        out = sum(torch.einsum("oc,nct->not", conv.weight[:, :, i], taps[i]) for i in range(3))
        return out if conv.bias is None else out + conv.bias[None, :, None]

    relu = torch.relu
    if placement == "post":
        assert conv.bias is None  # the norm after it makes a bias redundant
        branch = relu(_ln(c(x)))
    elif placement == "pre":
        branch = relu(c(_ln(x)))
    else:
        branch = _ln(relu(c(x)))
    want = branch + shortcut(x)
    torch.testing.assert_close(block(x), want, atol=1e-5, rtol=1e-5)
