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
        ({"space": "mac"}, "space.name: must be one of 'macro', 'nb201' or 'layers'"),
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
