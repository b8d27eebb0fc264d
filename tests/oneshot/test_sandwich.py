"""Sandwich sampling of the macro supernet: the extremes train every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normnas.errors import ConfigError
from normnas.oneshot import NB201Supernet, SupernetOptions, prepare_supernet, train_supernet
from normnas.oneshot.supernet_macro import MacroSupernet
from normnas.oneshot.training import draw_archs
from normnas.spaces import MacroSpace, NB201Space
from normnas.train import TrainConfig

from .helpers import small_digits

SPACE = MacroSpace(
    stages=[
        {"widths": [4, 8], "min_blocks": 1, "max_blocks": 2, "stride": 1},
        {"widths": [8, 12], "min_blocks": 1, "max_blocks": 2, "stride": 2},
    ],
    kernels=[1, 3],
    norms=["batchnorm", "groupnorm"],
    stem_width=4,
)


def _size(arch) -> list[tuple[int, ...]]:
    return [tuple((b.width, b.kernel) for b in stage) for stage in arch.stages]


def test_every_step_draws_the_largest_the_smallest_and_two_random() -> None:
    torch.manual_seed(0)
    net = MacroSupernet(SPACE, 10, 1)
    largest = [((8, 3), (8, 3)), ((12, 3), (12, 3))]  # by hand: max depth, width, kernel
    smallest = [((4, 1),), ((8, 1),)]
    rng = np.random.default_rng(0)
    for _ in range(20):
        archs = draw_archs(net, "sandwich", rng)
        assert len(archs) == 4
        assert _size(archs[0]) == largest and _size(archs[1]) == smallest
        for arch in archs:
            SPACE.validate(arch)


@pytest.mark.parametrize("sampling", ["sandwich", "uniform"])
def test_weights_only_the_largest_reaches_get_a_gradient_every_step(sampling: str) -> None:
    """The widest 3x3 filters of the last slot (channels 8-11) run only in archs at full
    depth, widest and with kernel 3: the largest always, a uniform arch 1 step in 8."""
    torch.manual_seed(0)
    net = MacroSupernet(SPACE, 10, 1)
    data = small_digits(n_train=64)
    weight = net.stages[1][1].convs["3"].weight
    got: list[bool] = []

    def after_step(record) -> None:  # one step per epoch: its gradients are still there
        got.append(weight.grad is not None and bool(weight.grad[8:].abs().sum() > 0))

    config = TrainConfig(epochs=12, batch_size=64, lr=0.05, seed=0)
    train_supernet(net, data, config, sampling, callback=after_step)  # type: ignore[arg-type]
    assert len(got) == 12
    if sampling == "sandwich":
        assert all(got)
    else:
        assert not all(got)  # the contrast: SPOS leaves them out most steps


def test_sandwich_needs_sizes_to_order() -> None:
    data = small_digits()
    nb201 = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    with pytest.raises(ValueError, match="sandwich_archs"):
        train_supernet(nb201, data, TrainConfig(epochs=1), "sandwich")
    with pytest.raises(ConfigError, match=r"^sampling: sandwich needs"):
        prepare_supernet(
            NB201Space(), data, TrainConfig(epochs=1), SupernetOptions(sampling="sandwich")
        )
