"""fit: history, reproducibility, divergence, callbacks, time limit, switches."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from normnas.data import DataBundle, load
from normnas.train import EpochRecord, TrainConfig, evaluate, fit
from normnas.train.fit import param_groups


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load("digits")


def small_cnn(seed: int = 0, width: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(width * 16, 10),
    )


def without_time(history: list[EpochRecord]) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(r).items() if k != "time_s"} for r in history]


def test_history_fields_and_result(digits) -> None:
    seen: list[EpochRecord] = []
    result = fit(small_cnn(), digits, TrainConfig(epochs=3, lr=0.05), callback=seen.append)
    assert result.status == "ok" and result.error is None
    assert result.epochs_run == 3 and [r.epoch for r in result.history] == [1, 2, 3]
    assert seen == result.history
    first, last = result.history[0], result.history[-1]
    assert last.train_loss < first.train_loss
    assert all(0 <= r.valid_acc <= 1 and 0 <= r.train_acc <= 1 for r in result.history)
    assert result.best_valid_acc == max(r.valid_acc for r in result.history)
    assert result.final_valid_acc == last.valid_acc
    assert last.lr < first.lr  # cosine decays
    assert first.time_s <= last.time_s <= result.time_s
    assert last.valid_acc > 0.5


def test_same_seed_same_history_other_seed_differs(digits) -> None:
    cfg = TrainConfig(epochs=2, lr=0.05, seed=7)
    a = fit(small_cnn(1), digits, cfg)
    b = fit(small_cnn(1), digits, cfg)
    c = fit(small_cnn(1), digits, dataclasses.replace(cfg, seed=8))
    assert without_time(a.history) == without_time(b.history)
    assert without_time(a.history) != without_time(c.history)


def test_reproducible_with_augmentation(digits) -> None:
    train = dataclasses.replace(digits.train, augment=True, padding=1)
    cfg = TrainConfig(epochs=1, lr=0.05)
    a = fit(small_cnn(), digits, cfg, train_split=train, valid_split=digits.valid)
    b = fit(small_cnn(), digits, cfg, train_split=train, valid_split=digits.valid)
    assert without_time(a.history) == without_time(b.history)


def test_huge_lr_diverges_without_exception(digits) -> None:
    result = fit(small_cnn(), digits, TrainConfig(epochs=5, lr=1e6, schedule="constant"))
    assert result.status == "diverged"
    assert "non-finite" in result.error
    assert result.epochs_run == 0 and result.history == []
    assert result.best_valid_acc is None


def test_callback_true_stops(digits) -> None:
    calls: list[int] = []

    def stop_at_two(record: EpochRecord) -> bool:
        calls.append(record.epoch)
        return record.epoch == 2

    result = fit(small_cnn(), digits, TrainConfig(epochs=5), callback=stop_at_two)
    assert result.status == "stopped" and result.epochs_run == 2 and calls == [1, 2]


def test_time_limit(digits) -> None:
    result = fit(small_cnn(), digits, TrainConfig(epochs=50, max_time_s=1e-3))
    assert result.status == "timeout"
    assert result.epochs_run == 1 and len(result.history) == 1  # partial epoch recorded
    assert result.history[0].valid_acc is not None


def test_no_validation_for_a_final_retrain(digits) -> None:
    tv = digits.train_plus_valid()
    result = fit(small_cnn(), digits, TrainConfig(epochs=1), train_split=tv, valid_split=None)
    assert result.status == "ok"
    assert result.history[0].valid_acc is None and result.history[0].valid_loss is None
    assert result.best_valid_acc is None and result.final_valid_acc is None


def test_bn_momentum_is_applied(digits) -> None:
    model = small_cnn()
    fit(model, digits, TrainConfig(epochs=1, bn_momentum=0.01))
    assert model[1].momentum == 0.01


def test_no_weight_decay_on_norm_and_bias() -> None:
    model = small_cnn()
    groups = param_groups(model, 5e-4, on_norm_and_bias=False)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[1]["weight_decay"] == 0.0
    assert id(model[0].weight) in decayed and id(model[5].weight) in decayed
    assert id(model[1].weight) not in decayed and id(model[5].bias) not in decayed
    assert len(param_groups(model, 5e-4, on_norm_and_bias=True)) == 1


def test_grad_clip_bounds_the_update(digits) -> None:
    model = small_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(epochs=1, lr=0.1, weight_decay=0, schedule="constant", grad_clip=1e-9)
    fit(model, digits, cfg)
    moved = max(
        float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before, strict=True)
    )
    assert moved < 1e-6
    free = small_cnn()
    fit(free, digits, dataclasses.replace(cfg, grad_clip=None))
    assert (
        max(
            float((p.detach() - b).abs().max())
            for p, b in zip(free.parameters(), before, strict=True)
        )
        > 1e-3
    )


def test_adamw_label_smoothing_warmup_and_schedules(digits) -> None:
    cfg = TrainConfig(
        epochs=2, optimizer="adamw", lr=3e-3, label_smoothing=0.1, warmup_epochs=1,
        schedule="warmup_cosine",
    )  # fmt: skip
    result = fit(small_cnn(), digits, cfg)
    assert result.status == "ok" and result.final_valid_acc > 0.5
    # warm-up of one epoch: its last step uses (nearly) the full lr
    assert result.history[0].lr == pytest.approx(3e-3, rel=0.1)
    const = fit(small_cnn(), digits, TrainConfig(epochs=1, schedule="constant", lr=0.02))
    assert const.history[0].lr == pytest.approx(0.02)
    fn = fit(small_cnn(), digits, TrainConfig(epochs=1, schedule=lambda t: 0.5, lr=0.02))
    assert fn.history[0].lr == pytest.approx(0.01)


def test_amp_is_a_no_op_on_cpu_and_channels_last_matches(digits) -> None:
    cfg = TrainConfig(epochs=1, lr=0.05, amp=False)
    base = fit(small_cnn(), digits, cfg)
    amp = fit(small_cnn(), digits, dataclasses.replace(cfg, amp=True))
    assert without_time(base.history) == without_time(amp.history)
    model = small_cnn()
    cl = fit(model, digits, dataclasses.replace(cfg, channels_last=True))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert cl.history[0].train_loss == pytest.approx(base.history[0].train_loss, rel=1e-3)


def test_tiny_train_split_is_an_error(digits) -> None:
    one = dataclasses.replace(digits.train, x=digits.train.x[:1], y=digits.train.y[:1])
    with pytest.raises(ValueError, match=">= 2 samples"):
        fit(small_cnn(), digits, TrainConfig(epochs=1), train_split=one)


def test_reaches_97_percent_test_accuracy_on_digits(digits) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip
    result = fit(model, digits, TrainConfig(epochs=12, batch_size=64, lr=0.1))
    assert result.status == "ok"
    assert evaluate(model, digits.test).accuracy >= 0.97
