"""The report's funnel of a cascade study: per stage its judge, candidates and seconds, the
Kendall tau between consecutive stages, and the last stage's measured values against the
cheap stages' vote; by hand on made-up trials and on a real cascade search on digits."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from scipy.stats import kendalltau, rankdata
from tests.report.page import parse

from normnas.judges import screening
from normnas.proxies.registry import DEFAULT_PROXIES
from normnas.report import study_data
from normnas.report.funnel import funnel
from normnas.report.html_page import build_report
from normnas.search.study import load_study, open_storage


def test_the_report_spells_the_cascade_attributes_as_the_screening_writes_them() -> None:
    assert study_data.CASCADE_ATTR == screening.CASCADE_ATTR
    assert study_data.SCREEN_ATTR == screening.SCREEN_ATTR


def _screened(key: str, stage: int, judge: str, **scores: float) -> optuna.trial.FrozenTrial:
    attrs = {"cascade_screen": True, "cascade_stage": stage, "cascade_judge": judge, "key": key}
    attrs.update({f"x.{k}": v for k, v in scores.items()})
    return create_trial(state=TrialState.PRUNED, user_attrs=attrs)


def _judged(key: str, value: float | None, cost: float) -> optuna.trial.FrozenTrial:
    """A last-stage trial (stage 2 of 3): trained to `value`, or failed when None."""
    attrs = {"cascade_stage": 2, "key": key, "arch": key, "cost_s": cost}
    attrs["status"] = "ok" if value is not None else "failed"
    return create_trial(value=0.0 if value is None else value, user_attrs=attrs)


def test_a_funnel_by_hand() -> None:
    # stage 0 (proxies) judges a..d: synflow ranks 0, 1/3, 2/3, 1 and jacov 1/3, 0, 2/3, 1,
    # so its vote is 1/6, 1/6, 2/3, 1; stage 1 (BN indicator) judges b, c, d: its own score
    # alone ranks them 1/2, 0, 1 (the proxies they carry from stage 0 are not its vote:
    # with them it would order b < c < d and agree with stage 0, tau 1)
    p = {"a": (1.0, 2.0), "b": (2.0, 1.0), "c": (3.0, 3.0), "d": (4.0, 4.0)}
    bn = {"b": 0.2, "c": 0.1, "d": 0.3}
    trials = [_screened(k, 0, "proxy", synflow=s, jacov=j) for k, (s, j) in p.items()]
    trials += [
        _screened(k, 1, "bn-indicator", synflow=p[k][0], jacov=p[k][1], bn_indicator=v)
        for k, v in bn.items()
    ]
    # the last stage trains c and d (0.9, 0.8) and fails on b
    trials += [_judged("c", 0.9, 2.0), _judged("d", 0.8, 3.0), _judged("b", None, 0.5)]
    attr = {
        "spec": "proxy:4,bn-indicator:3,train:3",
        "stages": [
            {"judge": "proxy", "judged": 4, "seconds": 1.25},
            {"judge": "bn-indicator", "judged": 3, "seconds": 0.5},
        ],
        "cut": False,
    }
    f = funnel(attr, trials)
    assert f is not None and not f.cut
    assert [(s.judge, s.judged, s.seconds) for s in f.stages] == [
        ("proxy", 4, 1.25), ("bn-indicator", 3, 0.5), ("train", 3, 5.5),
    ]  # fmt: skip
    assert f.stages[0].tau is None
    # stage 0 against 1 on b, c, d: votes 1/6, 2/3, 1 against 1/2, 0, 1: (b, c) discordant,
    # (b, d) and (c, d) concordant, no ties: tau = (2 - 1) / 3
    assert f.stages[1].pairs == 3 and f.stages[1].tau == pytest.approx(1 / 3)
    # stage 1 against training on c, d: 0 < 1 but 0.9 > 0.8
    assert f.stages[2].pairs == 2 and f.stages[2].tau == pytest.approx(-1.0)
    # the points: the vote of every cheap score over b, c, d (synflow 0, 1/2, 1; jacov
    # 0, 1/2, 1; bn_indicator 1/2, 0, 1) for c and d: 1/3 and 1
    assert [(p.vote, p.value) for p in f.points] == [
        pytest.approx((1 / 3, 0.9)), pytest.approx((1.0, 0.8)),
    ]  # fmt: skip
    assert f.tau == pytest.approx(-1.0)


def test_a_stage_cut_before_it_ran_is_left_out_and_the_last_follows_the_one_before() -> None:
    trials = [_screened(k, 0, "proxy", synflow=v) for k, v in (("a", 1.0), ("b", 2.0))]
    trials += [_judged("a", 0.3, 1.0), _judged("b", 0.5, 1.0)]
    attr = {
        "spec": "proxy:2,bn-indicator:1,train",
        "stages": [{"judge": "proxy", "judged": 2, "seconds": 0.1}],
        "cut": True,
    }
    f = funnel(attr, trials)
    assert f is not None and f.cut
    assert [(s.judge, s.judged) for s in f.stages] == [("proxy", 2), ("train", 2)]
    assert f.stages[1].tau == pytest.approx(1.0) and f.tau == pytest.approx(1.0)
    assert funnel(None, trials) is None and funnel({"spec": "magic:3"}, trials) is None


# a tiny macro space: 12 candidates of distinct classes, each trained a second on digits
SPACE = {
    "stages": [
        {"widths": [8, 16], "min_blocks": 1, "max_blocks": 2, "stride": 1},
        {"widths": [16, 24], "min_blocks": 1, "max_blocks": 1, "stride": 2},
    ],
    "dropout": [0.0],
}


@pytest.fixture(scope="module")
def cascade_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, str]:
    import normnas

    folder = tmp_path_factory.mktemp("cascade-study")
    url = f"sqlite:///{folder / 'c.db'}"
    normnas.search(
        space="macro", space_options=SPACE, data="digits", cascade="proxy:12,train:3",
        epochs=1, train={"batch_size": 64}, final=False, storage=url, study="c",
        verbose=False, seed=1,
    )  # fmt: skip
    return load_study("c", open_storage(url, write=False)), url


def _tau_from_the_study(study: optuna.Study) -> tuple[float, int]:
    """The proxies' vote over the 12 screened candidates against the trained accuracy of
    the candidates the last stage trained, computed here with scipy alone."""
    screened = [t for t in study.trials if t.user_attrs.get("cascade_screen")]
    names = sorted({k for t in screened for k in t.user_attrs if k.startswith("x.")})
    assert names == sorted(f"x.{p}" for p in DEFAULT_PROXIES)  # the default vote, each recorded
    n = len(screened)
    # a score a proxy could not give (naswot of some networks) is not recorded: it ranks last
    ranks = [
        (rankdata([t.user_attrs.get(k, -math.inf) for t in screened]) - 1) / (n - 1) for k in names
    ]
    vote = {t.user_attrs["key"]: sum(r[i] for r in ranks) / len(names)
            for i, t in enumerate(screened)}  # fmt: skip
    trained = [t for t in study.trials if t.user_attrs.get("cascade_stage") == 1]
    xs = [vote[t.user_attrs["key"]] for t in trained]
    ys = [t.value for t in trained]
    return float(kendalltau(xs, ys)[0]), len(trained)


def test_the_report_of_a_cascade_shows_its_funnel(cascade_study: tuple[optuna.Study, str]) -> None:
    study, url = cascade_study
    assert study.user_attrs["cascade"]["stages"][0]["judged"] == 12
    page = parse(build_report(study, url, measure=False))
    ids = [m.attrs["id"] for m in page.find("section")]
    assert ids[:2] == ["summary", "cascade"]
    judged = [m for m in page.marks if m.section == "cascade" and "judged" in m.classes]
    assert len(judged) == 2
    text = page.text("cascade")
    assert "1 proxy 12" in text and "2 train 3" in text
    tau, n = _tau_from_the_study(study)
    assert n == 3 and math.isfinite(tau)
    (row_tau,) = page.find("span", "tau", "cascade")
    assert float(row_tau.attrs["data-tau"]) == pytest.approx(tau, abs=1e-12)
    assert "on 3 candidates" in text
    # the scatter: one point per trained candidate, its tau in the caption
    assert len(page.find("circle", "cascade-pt", "cascade")) == 3
    (caption_tau,) = page.find("span", "scatter-tau", "cascade")
    assert float(caption_tau.attrs["data-tau"]) == pytest.approx(tau, abs=1e-12)
    assert f"Kendall τ = {tau:+.2f}" in text
    # the screened candidates are the funnel's, not rows of the trial table or the trajectory
    assert len(page.find("tr", section="trials")) == 1 + 3
    assert len(page.find("circle", "trial-pt", "trajectory")) == 2 * 3
    assert "screened 12" in page.text("summary")


def test_a_study_without_a_cascade_has_no_cascade_section(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize", study_name="plain")
    study.add_trial(create_trial(value=0.5, user_attrs={"status": "ok", "accuracy": 0.5}))
    page = parse(build_report(study, "memory", measure=False))
    assert "cascade" not in [m.attrs["id"] for m in page.find("section")]
    assert "#cascade" not in [m.attrs.get("href") for m in page.find("a")]
