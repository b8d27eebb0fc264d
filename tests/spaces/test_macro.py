"""MacroSpace: every sample builds and runs for every norm and placement; config; moves."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from normnas.nn import NORM_NAMES
from normnas.spaces import Block, MacroArch, MacroSpace, SearchSpace, StageSpec
from normnas.spaces._macro_model import PLACEMENTS
from normnas.spaces.macro import BLOCK_FIELDS

EXAMPLE = Path(__file__).parents[2] / "examples" / "macro_space.yaml"
space = MacroSpace()


def _uniform(norm: str, placement: str, width_index: int = -1, residual: bool = True) -> MacroArch:
    """Every stage at max depth, every block with the same choices."""
    return MacroArch(
        stages=tuple(
            tuple(
                Block(spec.widths[width_index], 5, norm, placement, "gelu", residual)
                for _ in range(spec.max_blocks)
            )
            for spec in space.stages
        ),
        dropout=0.2,
    )


def _runs(model: nn.Module, channels: int = 3) -> None:
    model.train()
    for size in (8, 32):
        out = model(torch.randn(2, channels, size, size))
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()


def _has_batchnorm(model: nn.Module) -> bool:
    return any("BatchNorm" in type(m).__name__ for m in model.modules())


def test_is_a_search_space() -> None:
    assert isinstance(space, SearchSpace)
    assert space.norms == NORM_NAMES


def test_seeded_samples_build_and_run_on_8x8_and_32x32() -> None:
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(10)]
    assert len(set(archs)) == 10
    for arch in archs:
        _runs(space.build(arch))
    # samples are seeded
    assert space.sample(np.random.default_rng(5)) == space.sample(np.random.default_rng(5))


@pytest.mark.parametrize(("norm", "placement"), list(itertools.product(NORM_NAMES, PLACEMENTS)))
def test_every_norm_and_placement_builds_and_runs(norm: str, placement: str) -> None:
    model = space.build(_uniform(norm, placement), in_channels=1)
    _runs(model, channels=1)
    assert _has_batchnorm(model) == (norm == "batchnorm")
    kinds = {type(m).__name__ for m in model.modules()}
    expected = {
        "batchnorm": "BatchNorm2d",
        "groupnorm": "GroupNorm",
        "instancenorm": "InstanceNorm2d",
        "layernorm": "ChannelLayerNorm",
    }
    if norm in expected:
        assert expected[norm] in kinds
    else:
        assert not kinds & set(expected.values())


@pytest.mark.parametrize("width_index", [0, 1, 2])
def test_groupnorm_fits_every_default_width(width_index: int) -> None:
    model = space.build(_uniform("groupnorm", "norm_act_conv", width_index))
    groups = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert len(groups) == 6
    _runs(model)


def test_bn_free_arch_has_no_batchnorm() -> None:
    bn_free = MacroSpace(norms=("groupnorm", "instancenorm", "layernorm", "none"))
    rng = np.random.default_rng(1)
    for _ in range(10):
        arch = bn_free.sample(rng)
        assert not _has_batchnorm(bn_free.build(arch))
    assert _has_batchnorm(
        space.build(
            _uniform("bn", "conv_norm_act") if False else _uniform("batchnorm", "conv_norm_act")
        )
    )


def test_block_layout_follows_the_placement() -> None:
    arch = MacroArch(
        stages=(
            (Block(16, 3, "batchnorm", "conv_norm_act", "relu", True),),
            (Block(32, 3, "none", "conv_norm_act", "silu", False),),
            (Block(64, 5, "groupnorm", "norm_act_conv", "gelu", True),),
        ),
        dropout=0.0,
    )
    small = MacroSpace(
        stages=[StageSpec((16,), 1, 1, 1), StageSpec((32,), 1, 1, 2), StageSpec((64,), 1, 1, 2)]
    )
    blocks = small.build(arch).blocks
    first, second, third = (list(b.body) for b in blocks)
    assert [type(m) for m in first] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert first[0].bias is None  # a norm directly follows the conv
    assert [type(m) for m in second] == [nn.Conv2d, nn.SiLU]
    assert second[0].bias is not None
    assert [type(m) for m in third] == [nn.GroupNorm, nn.GELU, nn.Conv2d]
    assert third[0].num_channels == 32  # pre-activation norm sees the block input
    assert third[2].stride == (2, 2) and third[2].kernel_size == (5, 5)
    # residual: identity when shapes match, strided 1x1 projection otherwise
    assert isinstance(blocks[0].shortcut, nn.Identity)
    assert blocks[1].shortcut is None
    assert isinstance(blocks[2].shortcut, nn.Conv2d) and blocks[2].shortcut.stride == (2, 2)
    x = torch.randn(2, 16, 8, 8)
    blocks[0].eval()
    torch.testing.assert_close(blocks[0](x), blocks[0].body(x) + x)


def test_conv_act_norm_is_conv_relu_bn() -> None:
    arch = _uniform("batchnorm", "conv_act_norm", residual=False)
    body = list(space.build(arch).blocks[0].body)
    assert [type(m) for m in body] == [nn.Conv2d, nn.GELU, nn.BatchNorm2d]
    assert body[0].bias is not None


def test_depth_skips_blocks_and_skipped_choices_do_not_matter() -> None:
    rng = np.random.default_rng(2)
    arch = space.sample(rng)
    params = space.to_params(arch)
    params["s1.depth"] = 1
    a = space.from_params({**params, "s1.b1.width": 32, "s1.b1.norm": "none"})
    b = space.from_params({**params, "s1.b1.width": 64, "s1.b1.norm": "layernorm"})
    assert a == b and hash(a) == hash(b)
    assert len(a.stages[1]) == 1
    assert len(space.build(a).blocks) == len(a.stages[0]) + 1 + len(a.stages[2])
    # a trial records only active choices; full_params writes the default block in skipped slots
    assert not [k for k in space.to_params(a) if k.startswith("s1.b1.")]
    assert space.full_params(a)["s1.b1.width"] == 32
    assert space.full_params(a)["s1.b1.norm"] == "batchnorm"
    assert space.from_params(space.full_params(a)) == a


def test_suggest_asks_only_the_active_choices() -> None:
    """Define-by-run: a stage of depth 1 records no parameter of its second slot."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    archs = {}

    def objective(trial: optuna.Trial) -> float:
        archs[trial.number] = space.suggest(trial)
        return 0.0

    study.optimize(objective, n_trials=30)
    depths_seen = set()
    for t in study.trials:
        arch = archs[t.number]
        assert t.params == space.to_params(arch)
        for i, stage in enumerate(arch.stages):
            depths_seen.add(len(stage))
            slots = {k.split(".")[1] for k in t.params if k.startswith(f"s{i}.b")}
            assert slots == {f"b{j}" for j in range(len(stage))}
        assert space.from_params(t.params) == arch
    assert depths_seen == {1, 2}  # both depths were drawn: the check above saw skipped slots
    with pytest.raises(ValueError, match=r"missing parameter 's0.b0.norm'"):
        space.from_params({k: v for k, v in study.trials[0].params.items() if k != "s0.b0.norm"})


def test_params_and_strings_round_trip() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        arch = space.sample(rng)
        assert space.from_params(space.to_params(arch)) == arch
        text = space.to_str(arch)
        assert space.from_str(text) == arch
        assert "[" in text and "dropout=" in text


def test_to_str_is_readable() -> None:
    text = space.to_str(_uniform("groupnorm", "conv_act_norm"))
    assert text.startswith("[w32-k5-groupnorm-conv_act_norm-gelu-res, ")
    assert text.endswith("] dropout=0.2")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[w16-k3-batchnorm-conv_norm_act-relu-res]",
        "[w16-k3-batchnorm-conv_norm_act-relu-res] [w32-k3-none-conv_norm_act-relu-res] dropout=0",
        "[w17-k3-batchnorm-conv_norm_act-relu-res] [w32-k3-bn-conv_norm_act-relu-res] "
        "[w64-k3-batchnorm-conv_norm_act-relu-res] dropout=0.0",
        "[w16-k3-batchnorm-sideways-relu-res] [w32-k3-batchnorm-conv_norm_act-relu-res] "
        "[w64-k3-batchnorm-conv_norm_act-relu-res] dropout=0.0",
    ],
)
def test_from_str_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="macro"):
        space.from_str(text)


def test_canonical_merges_placements_without_a_norm() -> None:
    a = _uniform("none", "conv_act_norm")
    b = _uniform("none", "conv_norm_act")
    assert a != b and space.canonical(a) == space.canonical(b) == b
    c = _uniform("none", "norm_act_conv")
    assert space.canonical(c) == c  # act before conv is another function
    d = _uniform("batchnorm", "conv_act_norm")
    assert space.canonical(d) == d


def _changed(a: MacroArch, b: MacroArch) -> list[str]:
    pa, pb = space.to_params(a), space.to_params(b)
    # a slot that a depth change switches on or off is part of that one change
    active = [k for k in pa if space._active(k, pa) and space._active(k, pb)]
    return [k for k in active if pa[k] != pb[k] or type(pa[k]) is not type(pb[k])]


def test_mutate_changes_exactly_one_active_choice() -> None:
    rng = np.random.default_rng(4)
    kinds = set()
    for _ in range(300):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert child != arch
        assert space.canonical(child) != space.canonical(arch)
        changed = _changed(arch, child)
        assert len(changed) == 1, changed
        kinds.add(changed[0].rsplit(".", 1)[-1])
    assert kinds == {"depth", "dropout", *BLOCK_FIELDS}


def test_neighbors_are_distinct_one_choice_changes() -> None:
    arch = _uniform("batchnorm", "conv_norm_act")
    neighbors = space.neighbors(arch)
    assert len(neighbors) == len(set(neighbors))
    assert all(len(_changed(arch, n)) == 1 for n in neighbors)
    # 3 depth moves + 6 blocks x (2 widths + 1 kernel + 4 norms + 2 placements + 2 acts + 1 res)
    # + 1 dropout
    assert len(neighbors) == 3 + 6 * 12 + 1


def test_distributions_list_every_slot_and_trials_a_subset() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        arch = space.suggest(trial)
        assert space.from_params(trial.params) == arch
        assert set(trial.params) <= set(space.distributions())
        study.tell(trial, 0.0)
    assert "s0.b1.norm" in space.distributions()


def test_yaml_example_and_dict_round_trip() -> None:
    from_yaml = MacroSpace.from_yaml(EXAMPLE)
    assert from_yaml.to_dict() == space.to_dict()
    custom = MacroSpace.from_dict(
        {
            "stages": [{"widths": [8, 12], "max_blocks": 3, "stride": 1}, {"widths": [16]}],
            "norms": ["gn", "none"],
            "kernels": [3],
            "residual": [True],
        }
    )
    assert custom.norms == ("groupnorm", "none")
    assert MacroSpace.from_dict(custom.to_dict()).to_dict() == custom.to_dict()
    arch = custom.sample(np.random.default_rng(0))
    _runs(custom.build(arch))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"depth": 3}, r"unknown key 'depth'; allowed keys: \['stages'"),
        ({"norms": ["batchnrom"]}, r"norms: unknown norm 'batchnrom'; allowed: \['batchnorm'"),
        ({"placements": ["act_first"]}, r"placements: 'act_first' is not one of \['conv_norm_act'"),
        (
            {"activations": ["tanh"]},
            r"activations: 'tanh' is not one of \['relu', 'gelu', 'silu'\]",
        ),
        ({"kernels": [4]}, r"kernels must be odd positive integers"),
        ({"residual": ["yes"]}, r"residual: 'yes' is not one of \[False, True\]"),
        ({"dropout": [1.5]}, r"dropout: 1.5 must be a probability"),
        ({"norms": []}, r"norms must be a non-empty list"),
        ({"placements": "conv_norm_act"}, r"placements must be a non-empty list"),
        ({"stages": [{"widths": [16], "blocks": 2}]}, r"stages\[0\]: unknown key 'blocks'"),
        ({"stages": [{"max_blocks": 2}]}, r"stages\[0\].widths is required"),
        ({"stages": [{"widths": [16], "min_blocks": 3}]}, r"min_blocks=3 exceeds max_blocks=2"),
        ({"stages": [{"widths": [16, 0]}]}, r"stages\[0\].widths must be positive integers"),
        ({"stem_width": -1}, r"stem_width must be an integer >= 0"),
    ],
)
def test_config_errors_name_the_field(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MacroSpace.from_dict(config)


def test_bad_yaml_and_bad_params(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("kernels: [3, 7]\nnorm: [bn]\n")
    with pytest.raises(ValueError, match="unknown key 'norm'"):
        MacroSpace.from_yaml(path)
    params = space.to_params(space.sample(np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r"s0.b0.norm='bn' is not one of"):
        space.from_params({**params, "s0.b0.norm": "bn"})
    with pytest.raises(ValueError, match=r"s2.depth=3 is not one of \[1, 2\]"):
        space.from_params({**params, "s2.depth": 3})


def test_min_image_size_keeps_instance_norm_trainable() -> None:
    assert space.min_image_size == 5  # strides 1, 2, 2: 8x8 digits end at 2x2
    model = space.build(_uniform("instancenorm", "conv_norm_act")).train()
    assert model(torch.randn(2, 3, 5, 5)).shape == (2, 10)
    with pytest.raises(ValueError, match="spatial element"):
        model(torch.randn(2, 3, 4, 4))  # 4 -> 4 -> 2 -> 1: a 1x1 map before a norm


@pytest.mark.parametrize(
    "config",
    [
        # (none, conv_act_norm) merges into (none, conv_norm_act); depth 1 or 2
        {"stages": [{"widths": [8], "min_blocks": 1, "max_blocks": 2, "stride": 1}],
         "kernels": [3], "norms": ["batchnorm", "none"], "activations": ["relu"],
         "residual": [False], "dropout": [0.0, 0.2]},
        # no conv_norm_act: nothing merges; two stages multiply
        {"stages": [{"widths": [8, 16], "min_blocks": 1, "max_blocks": 1, "stride": 1},
                    {"widths": [8], "min_blocks": 1, "max_blocks": 2, "stride": 2}],
         "kernels": [3], "norms": ["none"], "placements": ["conv_act_norm", "norm_act_conv"],
         "activations": ["relu", "gelu"], "residual": [False], "dropout": [0.0]},
        # a single architecture
        {"stages": [{"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
         "kernels": [3], "norms": ["batchnorm"], "placements": ["conv_norm_act"],
         "activations": ["relu"], "residual": [False], "dropout": [0.0]},
    ],
)  # fmt: skip
def test_size_is_the_number_of_distinct_architectures(config):
    small = MacroSpace.from_dict(config)
    choices = small._choices()
    keys = {
        small.to_str(small.canonical(small.from_params(dict(zip(choices, values, strict=True)))))
        for values in itertools.product(*choices.values())
    }
    assert small.size() == len(keys)  # what a search can tell apart, so when it is done
