"""Each LR schedule against its formula, computed by hand at chosen steps."""

from __future__ import annotations

import math

import pytest
import torch

from normnas.train import SCHEDULE_NAMES, make_scheduler

BASE = 0.1
TOTAL = 100


def lrs(name, total: int = TOTAL, **options) -> list[float]:
    """lr used at each step t = 0 .. total - 1 (read before scheduler.step(), as fit does)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    sched = make_scheduler(name, opt, total, **options)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out.append(opt.param_groups[0]["lr"])  # after the last step, t = total
    return out


def test_constant() -> None:
    assert lrs("constant") == pytest.approx([BASE] * (TOTAL + 1))


def test_step() -> None:
    lr = lrs("step", step_size=30, gamma=0.5)
    assert lr[29] == pytest.approx(0.1)
    assert lr[30] == pytest.approx(0.05)
    assert lr[60] == pytest.approx(0.025)
    assert lr[99] == pytest.approx(0.0125)


def test_step_default_is_thirds() -> None:
    lr = lrs("step")  # step_size = 100 // 3 = 33, gamma 0.1
    assert lr[32] == pytest.approx(0.1) and lr[33] == pytest.approx(0.01)


def test_multistep() -> None:
    lr = lrs("multistep", milestones=[20, 70], gamma=0.1)
    assert lr[19] == pytest.approx(0.1)
    assert lr[20] == pytest.approx(0.01)
    assert lr[69] == pytest.approx(0.01)
    assert lr[70] == pytest.approx(0.001)
    default = lrs("multistep")  # 50% and 75%
    assert default[49] == pytest.approx(0.1) and default[50] == pytest.approx(0.01)
    assert default[75] == pytest.approx(0.001)


def test_cosine() -> None:
    lr = lrs("cosine")
    assert lr[0] == pytest.approx(0.1)
    assert lr[50] == pytest.approx(0.05)
    assert lr[25] == pytest.approx(0.05 * (1 + math.sqrt(0.5)))  # cos(pi/4)
    assert lr[100] == pytest.approx(0.0, abs=1e-12)
    floor = lrs("cosine", min_lr=0.01)
    assert floor[50] == pytest.approx(0.01 + 0.09 * 0.5)
    assert floor[100] == pytest.approx(0.01)


def test_warmup_cosine() -> None:
    lr = lrs("warmup_cosine", warmup_steps=10)
    assert lr[0] == pytest.approx(0.01)  # (0 + 1) / 10
    assert lr[4] == pytest.approx(0.05)
    assert lr[9] == pytest.approx(0.1)
    assert lr[10] == pytest.approx(0.1)  # cosine starts over the remaining 90 steps
    assert lr[55] == pytest.approx(0.05)
    assert lr[100] == pytest.approx(0.0, abs=1e-12)
    default = lrs("warmup_cosine")  # warm-up = 5% of the steps
    assert default[0] == pytest.approx(0.02) and default[4] == pytest.approx(0.1)


def test_onecycle() -> None:
    lr = lrs("onecycle", pct_start=0.3)
    # torch OneCycleLR: start max/25, peak at step 0.3 * 100 - 1 = 29, end start/1e4
    assert lr[0] == pytest.approx(0.1 / 25)
    assert lr[29] == pytest.approx(0.1)
    # steps 0..29 anneal from 0.004 up to 0.1 by cosine: at step 14, 14/29 of the way
    assert lr[14] == pytest.approx(0.1 + (0.004 - 0.1) / 2 * (1 + math.cos(math.pi * 14 / 29)))
    # then down to 0.004 / 1e4 over steps 29..99
    end = 0.004 / 1e4
    assert lr[64] == pytest.approx(end + (0.1 - end) / 2 * (1 + math.cos(math.pi * 35 / 70)))
    assert lr[99] == pytest.approx(0.004 / 1e4)
    warm = lrs("onecycle", warmup_steps=10)  # warm-up becomes pct_start = 0.1
    assert warm[9] == pytest.approx(0.1)


def test_linear() -> None:
    lr = lrs("linear")
    assert lr[0] == pytest.approx(0.1)
    assert lr[25] == pytest.approx(0.075)
    assert lr[100] == pytest.approx(0.0, abs=1e-12)
    half = lrs("linear", end_factor=0.5)
    assert half[50] == pytest.approx(0.075)


def test_exponential() -> None:
    lr = lrs("exponential", gamma=0.9)
    assert lr[3] == pytest.approx(0.1 * 0.9**3)
    default = lrs("exponential")  # reaches 1% of the base at the end
    assert default[100] == pytest.approx(0.001)


def test_callable() -> None:
    lr = lrs(lambda t: 1 / (t + 1))
    assert lr[0] == pytest.approx(0.1)
    assert lr[9] == pytest.approx(0.01)


def test_warmup_in_front_of_any_schedule() -> None:
    lr = lrs("linear", warmup_steps=20)
    assert lr[0] == pytest.approx(0.005)  # 1 / 20
    assert lr[19] == pytest.approx(0.1)
    assert lr[20] == pytest.approx(0.1)
    assert lr[60] == pytest.approx(0.05)  # halfway through the 80 linear steps


def test_every_name_is_known() -> None:
    for name in SCHEDULE_NAMES:
        assert len(lrs(name, total=10)) == 11


def test_unknown_name_lists_names() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    with pytest.raises(ValueError, match="valid names: constant, step") as e:
        make_scheduler("triangle", opt, 10)
    assert all(n in str(e.value) for n in SCHEDULE_NAMES)


def test_bad_options() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    with pytest.raises(ValueError, match="unknown option"):
        make_scheduler("cosine", opt, 10, gamma=0.5)
    with pytest.raises(ValueError, match="total_steps"):
        make_scheduler("cosine", opt, 0)
    with pytest.raises(ValueError, match="warmup_steps"):
        make_scheduler("cosine", opt, 10, warmup_steps=11)
