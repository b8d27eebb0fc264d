"""Statistics of an ablation on synthetic runs whose answers are known."""

from __future__ import annotations

import math

import pytest

from normnas.ablate.design import Design, full_factorial
from normnas.ablate.factors import make_factor
from normnas.ablate.stats import Obs, analyse, t_interval
from normnas.ablate.summary import sentences

T_975_4 = 2.7764451051977987  # Student t, 97.5% quantile, 4 degrees of freedom (tables)
T_975_9 = 2.2621571627409915


def design_of(*factors):
    return Design("full", factors, tuple(full_factorial(factors)), "test")


def obs(design, cell, seed, acc, status="ok", epoch_s=1.0):
    return Obs(tuple(zip(design.names, cell, strict=True)), seed, status, acc, epoch_s)


def test_t_interval_matches_hand_computation():
    iv = t_interval([1, 2, 3, 4, 5])
    sd = math.sqrt(2.5)
    assert iv.mean == pytest.approx(3.0)
    assert iv.half == pytest.approx(T_975_4 * sd / math.sqrt(5))
    assert iv.excludes_zero
    one = t_interval([7.0])
    assert one.half is None and not one.excludes_zero
    assert t_interval([]) is None


def test_known_difference_is_found_with_its_interval():
    norm = make_factor("norm", ["bn", "gn"])
    d = design_of(norm)
    noise = [0.004, -0.003, 0.001, -0.002, 0.0, 0.003, -0.004, 0.002, -0.001, 0.0]
    runs = []
    for s in range(10):
        base = 0.90 + 0.01 * (s % 3)  # seeds differ a lot; pairing removes it
        runs.append(obs(d, ("batchnorm",), s, base))
        runs.append(obs(d, ("groupnorm",), s, base + 0.021 + noise[s]))
    stats = analyse(runs, d, 10)
    gn = stats.levels["norm"][1]
    diffs = [100 * (0.021 + e) for e in noise]
    mean = sum(diffs) / 10
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 9)
    assert gn.vs_baseline.mean == pytest.approx(mean)
    assert gn.vs_baseline.half == pytest.approx(T_975_9 * sd / math.sqrt(10))
    assert gn.vs_baseline.low < 2.1 < gn.vs_baseline.high
    assert gn.vs_baseline.low > 0
    text = " ".join(sentences(stats))
    assert f"GroupNorm beats BatchNorm by {mean:.1f} ± {gn.vs_baseline.half:.1f} points" in text


def test_no_difference_gives_an_interval_containing_zero():
    norm = make_factor("norm", ["bn", "gn"])
    d = design_of(norm)
    runs = []
    for s, e in enumerate([0.01, -0.01, 0.005, -0.005, 0.0, 0.002, -0.002]):
        runs.append(obs(d, ("batchnorm",), s, 0.9 + 0.01 * s))
        runs.append(obs(d, ("groupnorm",), s, 0.9 + 0.01 * s + e))
    stats = analyse(runs, d, 7)
    vs = stats.levels["norm"][1].vs_baseline
    assert vs.low < 0 < vs.high and not vs.excludes_zero
    assert "GroupNorm and BatchNorm do not differ detectably" in " ".join(sentences(stats))


def test_norm_by_batch_size_interaction():
    norm = make_factor("norm", ["bn", "gn"])
    bs = make_factor("batch_size", [8, 128], baseline=128)
    d = design_of(norm, bs)
    jitter = [0.002, -0.001, 0.0, 0.001, -0.002]
    runs = []
    for s, j in enumerate(jitter):
        runs += [
            obs(d, ("batchnorm", 8), s, 0.90),
            obs(d, ("groupnorm", 8), s, 0.93 + j),  # GN beats BN by 3 points at batch 8
            obs(d, ("batchnorm", 128), s, 0.95),
            obs(d, ("groupnorm", 128), s, 0.95 + j),  # and ties at 128
        ]
    stats = analyse(runs, d, 5)
    rows = {r.at: r for r in stats.interactions[("norm", "batch_size")]}
    assert rows[8].effect.mean == pytest.approx(3.0) and rows[8].effect.excludes_zero
    assert rows[128].effect.mean == pytest.approx(0.0) and not rows[128].effect.excludes_zero
    assert rows[8].contrast.mean == pytest.approx(3.0) and rows[8].contrast.excludes_zero
    assert rows[128].contrast is None  # the baseline level of batch size
    text = " ".join(sentences(stats))
    assert (
        "GroupNorm vs BatchNorm: at batch size 8 GroupNorm beats BatchNorm by 3.0 ± 0.2 points;"
        " at batch size 128 no detectable difference (+0.0 ± 0.2 points)."
    ) in text
    assert "gap changes from batch size 128 to batch size 8 by +3.0" in text


def test_diverged_runs_count_in_the_rate_not_in_the_mean():
    norm = make_factor("norm", ["bn", "none"])
    lr = make_factor("lr", [0.05, 0.8, 3.2], baseline=0.05)
    d = design_of(norm, lr)
    runs = []
    for s in range(3):
        runs += [
            obs(d, ("batchnorm", 0.05), s, 0.9),
            obs(d, ("batchnorm", 0.8), s, 0.88),
            obs(d, ("batchnorm", 3.2), s, None if s else 0.5, "diverged" if s else "ok"),
            obs(d, ("none", 0.05), s, 0.85),
            obs(d, ("none", 0.8), s, None, "diverged"),
            obs(d, ("none", 3.2), s, None, "diverged"),
        ]
    stats = analyse(runs, d, 3)
    lr_rows = {r.level: r for r in stats.levels["lr"]}
    assert lr_rows[3.2].diverged == 2 and lr_rows[3.2].divergence_rate == pytest.approx(2 / 3)
    assert lr_rows[3.2].accuracy.n == 1 and lr_rows[3.2].accuracy.mean == pytest.approx(50.0)
    assert stats.stable_lr == {"batchnorm": 0.8, "none": 0.05}
    text = " ".join(sentences(stats))
    assert "2 of 3 runs diverged" in text
    assert "BatchNorm 0.8, no norm 0.05" in text


def test_incomplete_study_is_said():
    norm = make_factor("norm", ["bn", "gn"])
    d = design_of(norm)
    stats = analyse([obs(d, ("batchnorm",), 0, 0.9)], d, 2)
    assert "Incomplete: 1 of 4 runs" in " ".join(sentences(stats))
