import pytest

from normnas.config import ConfigError, load_config, merge, parse_config, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["abc", "10x", "", "-5", 0])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trial": 3}, "trial: unknown key; allowed keys: data, data_root"),
        ({"train": {"epoch": 3}}, "train.epoch: unknown key; allowed keys: epochs, batch_size"),
        ({"strategy": "evo"}, "strategy: unknown strategy 'evo'; valid: additive, evolution, grid"),
        ({"space": "mac"}, "space.name: must be one of 'macro', 'nb201', 'layers' or 'seq'"),
        ({"space": {"name": "macro", "norms": ["bn", "foo"]}}, "space.norms: unknown norm 'foo'"),
        ({"objectives": ["acc"]}, "objectives.0: must be one of 'accuracy', 'params'"),
        ({"trials": "many"}, "trials: Input should be a valid integer"),
        ({"time": "soon"}, "time: 'soon' is not a duration"),
        ({"pruner": "asha"}, "pruner: must be one of 'none', 'sha' or 'hyperband'"),
        ({"train": {"schedule": "cos"}}, "train.schedule: unknown schedule 'cos'"),
    ],
)
def test_errors_are_one_line_naming_field_and_allowed_values(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("space: nb201\ntrain: {epochs: 4, lr: 0.1}\ntime: 2m\nstrategy: local\n")
    cfg = load_config(path, {"train.epochs": 2, "space.name": "macro", "trials": None})
    assert cfg.train.epochs == 2 and cfg.train.lr == 0.1  # flag wins, file kept elsewhere
    assert cfg.space.name == "macro" and cfg.time == 120.0 and cfg.trials is None
    assert cfg.study_name == "normnas-macro-digits"
    assert parse_config({}).trials == 20  # default budget when none is given


def test_merge_reaches_nested_keys_without_touching_the_base():
    base = {"train": {"epochs": 3}}
    out = merge(base, {"train.lr": 0.2, "constraints.max_params": 5})
    assert out == {"train": {"epochs": 3, "lr": 0.2}, "constraints": {"max_params": 5}}
    assert base == {"train": {"epochs": 3}}


def test_yaml_problems_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(top)


# a key given twice: plain yaml.safe_load keeps the last one silently
DUPLICATED = "trials: 3\nseed: 1\ntrain:\n  epochs: 2\n  lr: 0.1\n  epochs: 30\n"


def test_a_repeated_key_is_refused_naming_the_key_and_both_lines(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(DUPLICATED)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"config {str(path)!r}: line 6: duplicate key 'epochs' (first on line 4)"
    )


def test_every_yaml_file_refuses_a_repeated_key(tmp_path):
    from normnas.ablate.config import load_ablate_config
    from normnas.spaces import LayerSpace, MacroSpace

    ablate = tmp_path / "ablate.yaml"
    ablate.write_text("seeds: 2\nepochs: 1\nseeds: 5\n")
    with pytest.raises(ConfigError, match=r"^--config .*ablate\.yaml: line 3: duplicate key 'se"):
        load_ablate_config(ablate, {})
    layers = tmp_path / "layers.yaml"
    layers.write_text("input_size: 8\nlayers:\n  - {type: conv, filters: 8, filters: 16}\n")
    with pytest.raises(ValueError, match=r"layers\.yaml: line 3: duplicate key 'filters'"):
        LayerSpace.from_yaml(layers)
    macro = tmp_path / "macro.yaml"
    macro.write_text("kernels: [3]\nkernels: [5]\n")
    with pytest.raises(ValueError, match=r"macro\.yaml: line 2: duplicate key 'kernels'"):
        MacroSpace.from_yaml(macro)


def test_merge_keys_may_still_be_overridden(tmp_path):
    # `<<: *base` then a key of base is YAML's override, not a repeated key
    path = tmp_path / "run.yaml"
    path.write_text("defaults: &d {epochs: 2, lr: 0.1}\ntrain:\n  <<: *d\n  epochs: 4\n")
    from normnas.config import read_yaml

    assert read_yaml(path)["train"] == {"epochs": 4, "lr": 0.1}
