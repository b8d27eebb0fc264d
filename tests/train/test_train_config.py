"""TrainConfig validation: every bad value names its field."""

from __future__ import annotations

import pytest

from normnas.train import TrainConfig


def test_defaults() -> None:
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.optimizer, c.lr, c.schedule) == (
        10,
        128,
        "sgd",
        0.05,
        "cosine",
    )
    assert c.to_dict()["schedule"] == "cosine"
    assert TrainConfig(schedule=lambda t: 1.0).to_dict()["schedule"] == "<lambda>"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", 0),
        ("optimizer", "rmsprop"),
        ("lr", 0),
        ("lr", float("nan")),
        ("momentum", 1.0),
        ("weight_decay", -1),
        ("label_smoothing", 1.0),
        ("schedule", "triangle"),
        ("schedule_options", [1]),
        ("warmup_epochs", 11),
        ("grad_clip", 0),
        ("seed", "x"),
        ("device", "tpu"),
        ("max_time_s", -5),
        ("bn_momentum", 0),
        ("bn_momentum", 1.5),
    ],
)
def test_bad_value_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} "):
        TrainConfig(**{field: value})


def test_names_are_normalized() -> None:
    c = TrainConfig(optimizer="AdamW", schedule="OneCycle")
    assert (c.optimizer, c.schedule) == ("adamw", "onecycle")
