"""Training one supernet to several lengths with warm restarts: resume is exact."""

from __future__ import annotations

import pytest
import torch

from normnas.errors import StorageError
from normnas.oneshot import NB201Supernet, load_checkpoint, train_supernet
from normnas.oneshot.curve import check_lengths, length_checkpoint, train_lengths
from normnas.spaces import NB201Space
from normnas.train import TrainConfig

from .helpers import small_digits

CONFIG = TrainConfig(epochs=99, batch_size=64, lr=0.1, seed=0, schedule="cosine")


def _net() -> NB201Supernet:
    torch.manual_seed(0)
    return NB201Supernet(NB201Space(), 10, 1, C=4, N=1)


def test_killed_curve_resumes_to_the_uninterrupted_weights(tmp_path) -> None:
    data = small_digits()
    whole = _net()
    points = list(train_lengths(whole, data, CONFIG, (1, 3), tmp_path / "a" / "net"))
    assert [p.epochs for p in points] == [1, 3]
    assert points[1].time_s == pytest.approx(points[0].segment.time_s + points[1].segment.time_s)

    # killed after the first epoch of the second segment (the callback stops it there)
    seen: list[int] = []

    def stop_in_segment_two(record) -> bool:
        seen.append(record.epoch)
        return len(seen) == 2

    stem = tmp_path / "b" / "net"
    cut = list(train_lengths(_net(), data, CONFIG, (1, 3), stem, callback=stop_in_segment_two))
    assert [p.epochs for p in cut] == [1]
    assert load_checkpoint(length_checkpoint(stem, 3))["epoch"] == 1  # half of segment two
    resumed = _net()
    again = list(train_lengths(resumed, data, CONFIG, (1, 3), stem))
    assert [p.epochs for p in again] == [1, 3] and again[1].segment.resumed_from == 1
    for (key, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_segments_restart_the_schedule_and_the_first_is_a_plain_training(tmp_path) -> None:
    data = small_digits()
    points = list(train_lengths(_net(), data, CONFIG, (2, 4), tmp_path / "net"))
    lrs = [h.lr for p in points for h in p.segment.history]
    assert lrs[:2] == lrs[2:] and lrs[1] < lrs[0]  # each 2-epoch segment: its own cosine
    fresh = _net()
    train_supernet(fresh, data, TrainConfig(**{**CONFIG.to_dict(), "epochs": 2}))
    first = load_checkpoint(points[0].checkpoint)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, first["model"][key]), key
    # the second segment went on from the first's RNG states: a seeded restart would have
    # drawn the same batches and ended in the first's state
    second = load_checkpoint(points[1].checkpoint)
    assert second["rng"]["batch_gen"].ne(first["rng"]["batch_gen"]).any()


def test_bad_lengths_and_warm_start(tmp_path) -> None:
    with pytest.raises(ValueError, match="increasing"):
        check_lengths([20, 20])
    with pytest.raises(ValueError, match="increasing"):
        check_lengths([0, 5])
    data = small_digits()
    net = _net()
    half = tmp_path / "half.pt"
    config = TrainConfig(epochs=2, batch_size=64, lr=0.1, seed=0)
    train_supernet(net, data, config, checkpoint=half, callback=lambda r: True)
    with pytest.raises(StorageError, match="unfinished"):
        train_supernet(_net(), data, config, checkpoint=tmp_path / "x.pt", warm_start=half)
    other = NB201Supernet(NB201Space(), 10, 1, C=8, N=1)
    with pytest.raises(StorageError, match="same shapes"):
        train_supernet(other, data, config, checkpoint=tmp_path / "y.pt", warm_start=half)
