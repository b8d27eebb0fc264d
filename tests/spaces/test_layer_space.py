"""LayerSpace: YAML, active-only parameters, strings, moves, the built network, shape and
field errors, and a search from a YAML file through export (state dict and ONNX)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from tests import support
from torch import nn

from normnas.nn import ChannelLayerNorm
from normnas.spaces import Layer, LayerArch, LayerSpace, SearchSpace
from normnas.spaces._macro_model import ConvBlock

YAML = """\
input_size: 8
layers:
  - {type: conv, filters: [8, 16], kernel_size: [3, 5], norm: [bn, gn, none],
     placement: [conv_norm_act, conv_act_norm]}
  - {type: pool, kind: [max, avg], size: 2, optional: true}
  - {type: conv, filters: 16, norm: [bn, ln], repeat: [1, 2]}
  - type: residual
    optional: true
    layers:
      - {type: conv, filters: [16, 24], norm: bn}
      - {type: dropout, rate: [0.0, 0.5], optional: true}
  - {type: dense, units: [32, 64], activation: [relu, none], optional: true}
"""
SPACE = LayerSpace.from_dict(__import__("yaml").safe_load(YAML))
# every optional layer in, the conv twice, both choices of the residual body
FULL = {
    "L0.filters": 16, "L0.kernel_size": 5, "L0.norm": "groupnorm", "L0.placement": "conv_act_norm",
    "L1.on": True, "L1.kind": "avg", "L2.repeat": 2, "L2.norm": "layernorm",
    "L3.on": True, "L3.0.filters": 24, "L3.1.on": True, "L3.1.rate": 0.5,
    "L4.on": True, "L4.units": 32, "L4.activation": "none",
}  # fmt: skip


def _conv(filters: int, kernel: int = 3, norm: str = "batchnorm", placement: str = "conv_norm_act"):
    values = (("filters", filters), ("kernel_size", kernel), ("stride", 1), ("norm", norm),
              ("placement", placement), ("activation", "relu"))  # fmt: skip
    return values


def test_is_a_search_space_and_yaml_round_trips(tmp_path: Path) -> None:
    assert isinstance(SPACE, SearchSpace)
    path = tmp_path / "layers.yaml"
    path.write_text(YAML)
    space = LayerSpace.from_yaml(path)
    assert space.to_dict() == SPACE.to_dict()
    assert LayerSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()
    assert space.to_dict()["layers"][0]["norm"] == ["batchnorm", "groupnorm", "none"]  # aliases
    assert list(space.distributions()) == list(FULL)


def test_a_trial_records_only_the_active_parameters() -> None:
    study = optuna.create_study()
    off = {"L0.filters": 8, "L0.kernel_size": 3, "L0.norm": "none",
           "L0.placement": "conv_norm_act", "L1.on": False, "L2.repeat": 1,
           "L2.norm": "batchnorm", "L3.on": False, "L4.on": False}  # fmt: skip
    # inactive names given to the trial are not asked, so they are not recorded
    study.enqueue_trial({**off, "L1.kind": "max", "L3.0.filters": 24, "L4.units": 64})
    study.enqueue_trial(FULL)
    archs = []
    for _ in range(2):
        trial = study.ask()
        archs.append(SPACE.suggest(trial))
        study.tell(trial, 0.0)
    assert study.trials[0].params == off
    assert study.trials[1].params == FULL
    assert archs[0].layers[1] is None and archs[0].layers[3] is None and archs[0].layers[4] is None
    assert SPACE.to_params(archs[0]) == off and SPACE.to_params(archs[1]) == FULL
    # inactive names are ignored, missing active ones refused
    assert SPACE.from_params({**off, "L3.0.filters": 16, "L1.kind": "avg"}) == archs[0]
    with pytest.raises(ValueError, match=r"missing parameter 'L1.kind'"):
        SPACE.from_params({**off, "L1.on": True})
    with pytest.raises(ValueError, match=r"L0.filters=12 is not one of \[8, 16\]"):
        SPACE.from_params({**off, "L0.filters": 12})
    with pytest.raises(ValueError, match=r"unknown parameter 'L9.units'"):
        SPACE.from_params({**off, "L9.units": 3})


def test_strings_params_and_samples_round_trip() -> None:
    arch = SPACE.from_params(FULL)
    assert SPACE.to_str(arch) == (
        "conv(filters=16, kernel_size=5, stride=1, norm=groupnorm, placement=conv_act_norm, "
        "activation=relu) | pool(kind=avg, size=2) | conv(filters=16, kernel_size=3, stride=1, "
        "norm=layernorm, placement=conv_norm_act, activation=relu) x2 | residual[conv("
        "filters=24, kernel_size=3, stride=1, norm=batchnorm, placement=conv_norm_act, "
        "activation=relu); dropout(rate=0.5)] | dense(units=32, activation=none)"
    )
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(60)]
    assert len(set(archs)) > 40
    for a in archs:
        assert SPACE.from_str(SPACE.to_str(a)) == a
        assert SPACE.from_params(SPACE.to_params(a)) == a
    for text, message in [
        ("conv(filters=16)", "has 1 layers separated by ' | '; the space has 5"),
        (SPACE.to_str(arch).replace("filters=16, kernel_size=5", "filters=12, kernel_size=5"),
         r"layers\[0\].filters=12 is not one of \[8, 16\]"),
        (SPACE.to_str(arch).replace("conv(filters=16, kernel_size=3", "-  (filters=16, ker", 1),
         r"layers\[2\]: .* is not a conv layer"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            SPACE.from_str(text)


def test_the_network_is_the_layer_list() -> None:
    arch = SPACE.from_params(FULL)
    model = SPACE.build(arch, num_classes=10, in_channels=1)
    features = list(model.features)
    assert [type(m) for m in features] == [
        ConvBlock,
        nn.AvgPool2d,
        ConvBlock,
        ConvBlock,
        type(features[4]),
        nn.Sequential,
    ]
    # norms come from make_norm: groupnorm (after the act: conv_act_norm), channel layernorm
    assert [type(m) for m in features[0].body] == [nn.Conv2d, nn.ReLU, nn.GroupNorm]
    assert isinstance(features[2].body[1], ChannelLayerNorm)
    assert features[2].body[0].weight is not features[3].body[0].weight  # repeats: own weights
    residual = features[4]
    assert isinstance(residual.shortcut, nn.Conv2d) and residual.shortcut.in_channels == 16
    assert [type(m) for m in residual.body] == [ConvBlock, nn.Dropout]
    # the dense layer flattens the 24 x 4 x 4 map; no activation; then the classifier
    flatten, dense = features[5]
    assert isinstance(flatten, nn.Flatten) and dense.in_features == 24 * 4 * 4
    assert dense.out_features == 32 and isinstance(model.head[0], nn.Linear)
    assert model.head[0].in_features == 32
    out = model(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10) and torch.isfinite(out).all()


def test_hand_counted_parameters_of_a_small_arch() -> None:
    space = LayerSpace(
        [{"type": "conv", "filters": 4, "norm": "none"}, {"type": "pool"},
         {"type": "dense", "units": 5, "optional": True}],
        input_size=8,
    )  # fmt: skip
    on = space.build(space.from_params({"L2.on": True}), num_classes=10, in_channels=1)
    off = space.build(space.from_params({"L2.on": False}), num_classes=10, in_channels=1)
    conv = 1 * 4 * 9 + 4  # no norm: the conv keeps its bias
    assert sum(p.numel() for p in on.parameters()) == conv + (4 * 4 * 4 * 5 + 5) + (5 * 10 + 10)
    # without the dense layer the 4 x 4 map is average-pooled into the classifier
    assert sum(p.numel() for p in off.parameters()) == conv + (4 * 10 + 10)


def test_mutate_changes_one_active_choice_and_neighbors_are_distinct() -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        parent = SPACE.sample(rng)
        child = SPACE.mutate(parent, rng)
        assert child in SPACE.neighbors(parent)
        a, b = SPACE.to_params(parent), SPACE.to_params(child)
        changed = [n for n in a if n in b and a[n] != b[n]] + [n for n in a.keys() ^ b.keys()]
        # one value changed; a layer switched on/off or deepened also (de)activates its own
        own = changed[0].rsplit(".", 1)[0]
        assert all(n.startswith(own) for n in changed)
        assert sum(n in a and n in b for n in changed) == 1
    neighbors = SPACE.neighbors(parent)
    keys = [SPACE.to_str(SPACE.canonical(n)) for n in neighbors]
    assert len(set(keys)) == len(keys) and SPACE.to_str(SPACE.canonical(parent)) not in keys


def test_canonical_merges_what_computes_the_same() -> None:
    base = {**FULL, "L0.norm": "none"}
    a = SPACE.from_params({**base, "L0.placement": "conv_act_norm"})
    b = SPACE.from_params({**base, "L0.placement": "conv_norm_act"})
    assert a != b and SPACE.canonical(a) == SPACE.canonical(b) == b
    x = torch.randn(2, 1, 8, 8)
    outputs = []
    for arch in (a, b):
        torch.manual_seed(0)
        outputs.append(SPACE.build(arch, in_channels=1).eval()(x))
    torch.testing.assert_close(outputs[0], outputs[1])  # the same function indeed
    # an optional dropout of rate 0 is no dropout
    no_drop = SPACE.from_params({**FULL, "L3.1.rate": 0.0})
    assert SPACE.canonical(no_drop).layers[3].body[1] is None


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "pool"}, {"type": "pool"}, {"type": "pool"}, {"type": "pool", "size": [2, 3]}],
         r"^layers\[3\] \(pool\): a 3x3 pool does not fit the 1x1 map it can get from 8x8"),
        # the worst case counts every optional layer in and every repeat at its largest
        ([{"type": "pool", "optional": True}, {"type": "conv", "filters": 4, "stride": [1, 2]},
          {"type": "pool", "repeat": [1, 2]}],
         r"^layers\[2\] \(pool\): a 2x2 pool does not fit the 1x1 map"),
        ([{"type": "pool", "size": 8}, {"type": "conv", "filters": 4, "norm": ["bn", "in"]}],
         r"^layers\[1\] \(conv\): instance norm cannot train on the 1x1 map"),
        ([{"type": "dense", "units": 8}, {"type": "conv", "filters": 4}],
         r"^layers\[1\] \(conv\): needs a feature map"),
        ([{"type": "residual", "layers": [{"type": "pool"}]}],
         r"^layers\[0\].layers\[0\] \(pool\): a residual group keeps the map size"),
        ([{"type": "residual", "layers": [{"type": "conv", "filters": 4, "stride": [1, 2]}]}],
         r"^layers\[0\].layers\[0\] \(conv\): stride: a residual group keeps the map size"),
    ],
)  # fmt: skip
def test_impossible_shapes_are_one_line_errors_naming_the_layer(layers, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        LayerSpace(layers, input_size=8)
    assert "\n" not in str(info.value)
    if "map size" not in message and "feature map" not in message:
        LayerSpace(layers, input_size=32)  # larger images fit


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"layers": [{"type": "conv", "filters": 8}]}, r"^input_size: required"),
        ({"input_size": 0, "layers": []}, r"^input_size: expected the image size"),
        ({"input_size": 8, "layers": []}, r"^layers: the list is empty"),
        ({"input_size": 8, "layers": [{"type": "convolution"}]},
         r"^layers\[0\]: type: 'convolution' is not one of \['conv', 'pool'"),
        ({"input_size": 8, "layers": [{"type": "pool"}, {"type": "conv"}]},
         r"^layers\[1\] \(conv\): filters is required"),
        ({"input_size": 8, "layers": [{"type": "conv", "filter": 8}]},
         r"^layers\[0\] \(conv\): unknown field 'filter'; allowed: type, optional, repeat, fil"),
        ({"input_size": 8, "layers": [{"type": "conv", "filters": [8, "wide"]}]},
         r"^layers\[0\] \(conv\): filters: expected a positive integer, got 'wide'"),
        ({"input_size": 8, "layers": [{"type": "conv", "filters": 8, "kernel_size": [3, 4]}]},
         r"^layers\[0\] \(conv\): kernel_size: expected an odd positive integer"),
        ({"input_size": 8, "layers": [{"type": "conv", "filters": 8, "norm": ["bn", "fancy"]}]},
         r"^layers\[0\] \(conv\): norm: unknown norm 'fancy'"),
        ({"input_size": 8, "layers": [{"type": "conv", "filters": 8, "norm": ["bn", "batchnorm"]}]},
         r"^layers\[0\] \(conv\): norm: a choice is repeated"),
        ({"input_size": 8, "layers": [{"type": "dropout", "rate": 1.5}]},
         r"^layers\[0\] \(dropout\): rate: expected a rate in \[0, 1\), got 1.5"),
        ({"input_size": 8, "layers": [{"type": "pool", "optional": "yes"}]},
         r"^layers\[0\] \(pool\): optional: expected true or false"),
        ({"input_size": 8, "layers": [{"type": "pool", "repeat": [1, 0]}]},
         r"^layers\[0\] \(pool\): repeat: expected a positive integer, got 0"),
        ({"input_size": 8, "layers": [{"type": "residual", "layers": [{"type": "conv"}]}]},
         r"^layers\[0\].layers\[0\] \(conv\): filters is required"),
        ({"input_size": 8, "layers": [{"type": "dense", "units": 4}], "head": 3},
         r"^layers: unknown key 'head'"),
    ],
)  # fmt: skip
def test_bad_fields_are_one_line_errors_naming_layer_and_field(config, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        LayerSpace.from_dict(config)
    assert "\n" not in str(info.value)


def test_cli_refuses_a_bad_layer_file_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("input_size: 8\nlayers:\n  - {type: conv, filters: 8}\n"
                                       "  - {type: pool, size: [2, 16]}\n")  # fmt: skip
    result = support.invoke(["search", "--space", "bad.yaml", "--trials", "1"], tmp_path)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --space: bad.yaml: layers[1] (pool): a 16x16 pool does not fit the 8x8 map it "
        "can get from 8x8 images (every optional layer in, every repeat at its most); use a "
        "smaller size, fewer pools or larger images"
    ]
    assert not (tmp_path / "normnas.db").exists()
    (tmp_path / "cifar.yaml").write_text("input_size: 32\nlayers: [{type: conv, filters: 8}]\n")
    result = support.invoke(["search", "--space", "cifar.yaml", "--trials", "1"], tmp_path)
    assert result.exit_code == 2
    assert "images are 8x8, but the space 'layers' was defined for 32x32" in result.output


SEARCH_YAML = """\
input_size: 8
layers:
  - {type: conv, filters: [8, 12], norm: [bn, none]}
  - {type: conv, filters: 12, norm: bn, repeat: [1, 2]}
  - {type: pool, kind: [max, avg], size: 2}
  - {type: dense, units: 16, optional: true}
"""


@pytest.fixture(scope="module")
def layer_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("layers")
    (folder / "layers.yaml").write_text(SEARCH_YAML)
    args = ["search", "--space", "layers.yaml", "--trials", "3", "--epochs", "1",
            "--study", "ls", "--seed", "3", "--no-progress"]  # fmt: skip
    result = support.invoke(args, folder)
    assert result.exit_code == 0, result.output
    return folder


def test_a_yaml_layer_space_searches_and_exports_its_state_dict(layer_study: Path) -> None:
    import normnas
    from normnas.search import final
    from normnas.search import records as rec
    from normnas.search.study import load_study, open_storage

    study = load_study("ls", open_storage(f"sqlite:///{layer_study / 'normnas.db'}"))
    recs = [r for r in rec.records(study) if r.evaluated]
    assert len(recs) == 3 and all(r.status == "ok" for r in recs)
    space = LayerSpace.from_yaml(layer_study / "layers.yaml")
    for r in recs:  # the study holds the active parameters of each architecture
        assert r.params == space.to_params(space.from_str(r.arch))
    out = layer_study / "exported.pt"
    result = support.invoke(["export", "--study", "ls", "--out", str(out)], layer_study)
    assert result.exit_code == 0, result.output
    model, ckpt = final.load(out)
    best = rec.best_records(study)[0]
    assert ckpt["arch"] == best.arch and ckpt["space"]["name"] == "layers"
    rebuilt = space.build(space.from_str(ckpt["arch"]), 10, 1)
    rebuilt.load_state_dict(ckpt["state_dict"])
    x = normnas.data.load("digits").test.x[:16]
    torch.testing.assert_close(rebuilt.eval()(x), model(x))


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")),
    reason="needs the onnx extra",
)
def test_a_yaml_layer_space_exports_to_onnx_equal_to_pytorch(layer_study: Path) -> None:
    import onnxruntime as ort

    import normnas
    from normnas.search import final

    out = layer_study / "best.onnx"
    result = support.invoke(
        ["export", "--study", "ls", "--format", "onnx", "--out", str(out)], layer_study
    )
    assert result.exit_code == 0, result.output
    model, _ = final.load(layer_study / "ls-best.pt")
    x = normnas.data.load("digits").test.x[:64]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (64, 10) and np.abs(got - want).max() <= 1e-4


def test_layer_arch_values_are_hashable_and_compare_by_value() -> None:
    a = LayerArch((Layer("conv", _conv(8)),))
    b = LayerArch((Layer("conv", _conv(8)),))
    assert a == b and hash(a) == hash(b) and a != LayerArch((Layer("conv", _conv(16)),))


def test_the_leaderboard_names_each_layers_norm_and_placement() -> None:
    from normnas.report.leaderboard import norm_choices

    # conv gn (conv→act→norm), the repeated conv ln twice, the residual's conv bn
    assert norm_choices(SPACE, FULL) == "gn·can, ln·cna ×2, bn·cna"


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs the keras extra")
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_a_yaml_layer_space_exports_to_keras_equal_to_pytorch(layer_study: Path) -> None:
    import normnas
    from normnas.export import export
    from normnas.export.keras import keras_module, keras_outputs
    from normnas.search import final

    out = layer_study / "best.keras"
    export(layer_study / "ls-best.pt", out, fmt="keras")
    keras_model = keras_module().saving.load_model(out)
    model, _ = final.load(layer_study / "ls-best.pt")
    x = normnas.data.load("digits").test.x[:64]
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(keras_outputs(keras_model, x) - want).max() <= 1e-4


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "conv", "filters": 8}, {"type": "pool"},
          {"type": "conv", "filters": 8, "repeat": 10000}],
         r"^layers\[2\] \(conv\): repeat: exceeds the limit of 256 copies, got 10000$"),
        ([{"type": "dropout", "rate": 0.1, "repeat": [1, 257]}],
         r"^layers\[0\] \(dropout\): repeat: exceeds the limit of 256 copies, got 257$"),
        # repeats inside a repeated group multiply: 100 groups of at least 20 convs
        ([{"type": "residual", "repeat": 100,
           "layers": [{"type": "conv", "filters": 4, "repeat": [20, 30]}]}],
         r"^layers: the smallest network of this space has 2,000 layers .* over the limit of "
         r"1,024; use fewer repeats$"),
    ],
)  # fmt: skip
def test_repeats_beyond_what_a_trial_can_build_are_refused(layers, message) -> None:
    with pytest.raises(ValueError, match=message):
        LayerSpace(layers, input_size=8)


def test_the_depth_limit_counts_the_smallest_network_only() -> None:
    # optional layers out and each repeat at its fewest: 256 + 1 layers, within the limit
    space = LayerSpace(
        [{"type": "activation", "activation": "relu", "repeat": [1, 256]},
         {"type": "dropout", "rate": 0.1, "repeat": 256},
         {"type": "conv", "filters": 4, "repeat": 256, "optional": True}],
        input_size=8,
    )  # fmt: skip
    assert space.to_dict()["layers"][1]["repeat"] == 256


def test_a_residual_inside_a_residual_computes_x_plus_f_of_x_plus_g_of_x() -> None:
    conv = {"type": "conv", "filters": 4, "norm": "none"}
    inner = {"type": "residual", "layers": [{**conv, "activation": "relu"}]}  # x + g(x)
    space = LayerSpace(
        [{"type": "residual", "layers": [inner, {**conv, "activation": "gelu"}]}], input_size=6
    )
    arch = space.sample(np.random.default_rng(0))
    assert space.to_str(arch).startswith("residual[residual[conv(filters=4")
    assert space.from_str(space.to_str(arch)) == arch
    torch.manual_seed(0)
    model = space.build(arch, num_classes=3, in_channels=4).eval()
    (outer_group,) = model.features
    inner_group, f_block = outer_group.body
    g_conv, f_conv = inner_group.body[0].body[0], f_block.body[0]
    x = torch.randn(2, 4, 6, 6)
    g = torch.relu(nn.functional.conv2d(x, g_conv.weight, g_conv.bias, padding=1))
    f = nn.functional.gelu(nn.functional.conv2d(x + g, f_conv.weight, f_conv.bias, padding=1))
    assert torch.allclose(model.features(x), x + f, atol=1e-6)


def test_size_is_the_number_of_distinct_architectures():
    import itertools

    small = LayerSpace.from_dict(
        {
            "input_size": 8,
            "layers": [
                # (none, conv_act_norm) is (none, conv_norm_act)
                {"type": "conv", "filters": [8, 16], "norm": ["bn", "none"],
                 "placement": ["conv_norm_act", "conv_act_norm", "norm_act_conv"]},
                # an optional dropout of rate 0 is the layer left out, at any repeat
                {"type": "dropout", "rate": [0.0, 0.25], "optional": True, "repeat": [1, 2]},
                {"type": "residual", "optional": True, "layers": [
                    {"type": "conv", "filters": 8, "norm": ["none", "gn"],
                     "placement": ["conv_act_norm", "conv_norm_act"], "optional": True},
                    {"type": "dropout", "rate": [0.0, 0.1], "optional": True}]},
                {"type": "dense", "units": [16, 32], "optional": True},
            ],
        }
    )  # fmt: skip
    choices = small._choices
    keys = {
        small.to_str(small.canonical(small.from_params(dict(zip(choices, values, strict=True)))))
        for values in itertools.product(*choices.values())
    }
    assert small.size() == len(keys) == 810
