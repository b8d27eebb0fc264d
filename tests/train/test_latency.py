"""Latency's protocol: pinned threads, rounds, the smallest round median, the load recorded,
and when a figure is not to be trusted."""

from __future__ import annotations

import os
import pickle
import time

import pytest
import torch
from torch import nn

from normnas.train.cost import (
    MAX_ROUND_SPREAD,
    Latency,
    LatencyMs,
    latency_reliable,
    measure_latency,
    network_costs,
)

BASE_S = 0.004  # what the model costs
EXTRA_S = 0.012  # what "other work" adds to each call it disturbs


class _Disturbed(nn.Module):
    """Sleeps BASE_S per forward call, BASE_S + EXTRA_S on the calls in `slow` (counted from
    the first, warm-up included): a model whose true cost is known, timed on a machine
    that is busy at known times."""

    def __init__(self, slow: range) -> None:
        super().__init__()
        self.slow = slow
        self.calls = 0
        self.threads: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.threads.append(torch.get_num_threads())
        time.sleep(BASE_S + (EXTRA_S if self.calls in self.slow else 0.0))
        self.calls += 1
        return x


def test_the_figure_is_the_quietest_rounds_median() -> None:
    # 2 warm-up calls, then 3 rounds of 5: the first two rounds (calls 2-11) are disturbed,
    # so most runs are slow and a median over all runs (the old figure) would be one
    model = _Disturbed(slow=range(2, 12))
    lat = measure_latency(model, (1,), warmup=2, runs=15, rounds=3)
    assert (lat.runs, lat.rounds) == (15, 3) and model.calls == 17
    # sleep never returns early; the slow rounds' medians are >= 16 ms
    assert BASE_S * 1e3 <= lat.median_ms < (BASE_S + EXTRA_S / 2) * 1e3
    # the slow rounds are > 25% above the quiet one: the figure is marked unreliable
    assert lat.spread > MAX_ROUND_SPREAD and lat.reliable is False


def test_runs_split_into_rounds_of_nearly_equal_size() -> None:
    model = _Disturbed(slow=range(0))
    lat = measure_latency(model, (1,), warmup=0, runs=7, rounds=3)  # rounds of 3, 2, 2
    assert (lat.runs, lat.rounds) == (7, 3) and model.calls == 7
    lat = measure_latency(model, (1,), warmup=0, runs=2, rounds=5)  # no empty round
    assert lat.rounds == 2


def test_threads_are_pinned_while_timing_and_restored() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        model = _Disturbed(slow=range(0))
        lat = measure_latency(model, (1,), warmup=1, runs=3, rounds=1)
        assert set(model.threads) == {1} and lat.threads == 1  # batch-1 default: one thread
        assert torch.get_num_threads() == 3
        model.threads.clear()
        lat = measure_latency(model, (1,), warmup=1, runs=3, rounds=1, threads=2)
        assert set(model.threads) == {2} and lat.threads == 2
        assert torch.get_num_threads() == 3
        model.threads.clear()
        lat = measure_latency(model, (1,), warmup=1, runs=3, rounds=1, threads=None)
        assert set(model.threads) == {3} and lat.threads == 3  # None: as set
    finally:
        torch.set_num_threads(before)


def test_threads_are_restored_when_the_model_fails() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("broken")

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="broken"):
        measure_latency(Broken(), (1,), threads=1)
    assert torch.get_num_threads() == before


def test_the_machine_is_recorded_with_the_figure() -> None:
    lat = measure_latency(nn.Conv2d(1, 2, 3), (1, 8, 8), warmup=1, runs=4, rounds=2)
    assert lat.cores == os.cpu_count()
    assert lat.load is not None and lat.load >= 0  # Linux has a load average
    assert lat.own_load >= 0
    spread_ok = lat.spread <= MAX_ROUND_SPREAD
    assert lat.reliable == (spread_ok and lat.load - lat.own_load <= lat.cores - 1)


@pytest.mark.parametrize(
    ("load", "cores", "threads", "spread", "own", "reliable"),
    [
        (0.3, 2, 1, 0.0, 0.0, True),  # an idle machine
        (1.0, 2, 1, 0.0, 0.0, True),  # one core busy elsewhere, ours free
        (5.2, 2, 1, 0.0, 0.0, False),  # the machine: others wanted 5 cores of 2
        (1.5, 2, 1, 0.0, 0.0, False),
        (1.5, 16, 4, 0.0, 0.0, True),
        (12.5, 16, 4, 0.0, 0.0, False),  # 12.5 > 16 - 4
        (2.6, 2, 1, 0.0, 2.0, True),  # the load is our own training, stopped since
        (3.1, 2, 1, 0.0, 2.0, False),  # and 1.1 more from elsewhere
        (0.0, 2, 1, 0.3, 0.0, False),  # rounds 30% apart
        (0.0, 2, 1, 0.25, 0.0, True),  # at the limit
        (None, 2, 1, 0.1, 0.0, True),  # no load average (Windows): the rounds decide
        (None, 2, 1, 0.5, 0.0, False),
    ],
)
def test_when_a_latency_is_reliable(
    load: float | None, cores: int, threads: int, spread: float, own: float, reliable: bool
) -> None:
    assert latency_reliable(load, cores, threads, spread, own) is reliable


def test_network_costs_latency_carries_its_measurement_across_processes() -> None:
    cost = network_costs(nn.Conv2d(1, 2, 3), (1, 8, 8), names=["latency_ms"])
    figure = cost["latency_ms"]
    assert isinstance(figure, LatencyMs) and float(figure) > 0
    assert figure.cores == os.cpu_count() and isinstance(figure.reliable, bool)
    back = pickle.loads(pickle.dumps(figure))  # as a worker process returns it
    assert (float(back), back.load, back.cores, back.reliable) == (
        float(figure), figure.load, figure.cores, figure.reliable
    )  # fmt: skip
    lat = Latency(median_ms=1.5, iqr_ms=0.1, runs=10, load=4.0, cores=2, reliable=False)
    assert LatencyMs.of(lat) == 1.5 and (LatencyMs.of(lat).load, LatencyMs.of(lat).reliable) == (
        4.0, False,
    )  # fmt: skip
