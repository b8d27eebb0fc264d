"""The design generator: full factorial, two-factor grids, one factor at a time."""

from __future__ import annotations

import itertools

import pytest

from normnas.ablate.design import choose_design, full_factorial, one_at_a_time, pairs_design
from normnas.ablate.factors import make_factor, parse_factors, parse_levels_option
from normnas.errors import ConfigError


@pytest.fixture
def three():
    return parse_factors(["norm", "batch_size", "schedule"])  # 5 x 3 x 4 levels


def test_full_factorial_is_every_combination(three):
    cells = full_factorial(three)
    assert len(cells) == 60 and len(set(cells)) == 60
    assert set(cells) == set(itertools.product(*(f.levels for f in three)))


def test_pairs_are_norm_grids_around_the_baseline(three):
    cells = pairs_design(three)
    # norm x batch size (15) + norm x schedule (20) - the 5 norm cells they share
    assert len(cells) == 30 and len(set(cells)) == 30
    assert cells[0] == ("batchnorm", 32, "cosine")
    for norm, bs in itertools.product(three[0].levels, three[1].levels):
        assert (norm, bs, "cosine") in cells
    for norm, sched in itertools.product(three[0].levels, three[2].levels):
        assert (norm, 32, sched) in cells
    # never two non-norm factors off their baselines at once
    assert all(not (bs != 32 and s != "cosine") for _, bs, s in cells)


def test_one_at_a_time(three):
    cells = one_at_a_time(three)
    assert len(cells) == 1 + 4 + 2 + 3
    assert all(sum(a != b for a, b in zip(c, cells[0], strict=True)) == 1 for c in cells[1:])


def test_pairs_without_norm_take_every_pair():
    f = parse_factors(["batch_size", "schedule", "lr"])
    cells = pairs_design(f)  # the 3x4, 3x5 and 4x5 grids around the baseline
    # two off baseline: 2x3 + 2x4 + 3x4; one off: 2 + 3 + 4; and the baseline
    assert len(cells) == 26 + 9 + 1


def test_choice_follows_the_budget(three):
    # baseline run 1 s; batch 8 costs 4**0.8 ~ 3.03x, batch 128 0.5x (the floor)
    big = choose_design(three, 2, trial_s=1.0, budget_s=10_000)
    assert big.kind == "full" and "fits" in big.reason
    mid = choose_design(three, 2, trial_s=1.0, budget_s=200)
    assert mid.kind == "pairs" and len(mid.cells) == 30
    small = choose_design(three, 2, trial_s=1.0, budget_s=10)
    assert small.kind == "ofat" and "does not fit either" in small.reason
    unbounded = choose_design(three, 3)  # 180 runs <= 240 without --time
    assert unbounded.kind == "full"
    assert choose_design(three, 5).kind == "pairs"  # 300 runs > 240, pairs 150
    assert choose_design(three, 2, requested="ofat").kind == "ofat"


def test_bad_factors_and_levels_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown factor 'nrm'"):
        parse_factors(["nrm"])
    with pytest.raises(ConfigError, match="factor norm: unknown norm 'xx'"):
        make_factor("norm", ["bn", "xx"])
    with pytest.raises(ConfigError, match="repeated"):
        make_factor("norm", ["bn", "batchnorm"])
    with pytest.raises(ConfigError, match="baseline 64 is not one of its levels"):
        make_factor("batch_size", [8, 32], baseline=64)
    with pytest.raises(ConfigError, match=r"level '0\.5' is not an integer >= 2"):
        make_factor("batch_size", ["0.5"])
    with pytest.raises(ConfigError, match="expected FACTOR=LEVEL"):
        parse_levels_option(["norm"])
    with pytest.raises(ConfigError, match="design: 'half'"):
        choose_design(parse_factors(["norm", "lr"]), 2, requested="half")
