"""Which choices matter: the numbers behind the report's section, against hand computation."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from tests.report.conftest import SPACE, MadeStudy

from normnas.report import analysis
from normnas.report.study_data import load
from normnas.spaces import MacroSpace


def test_kinds_group_every_slot_and_prefix() -> None:
    assert analysis.kind_of("s1.b0.norm") == "norm"
    assert analysis.kind_of("arch.s0.b1.placement") == "placement"
    assert analysis.kind_of("recipe.schedule") == "schedule"
    assert analysis.kind_of("arch.edge_2<-1") == "cell op"
    imp = {"s0.b0.norm": 0.25, "s1.b0.norm": 0.15, "s0.depth": 0.1, "s0.b0.width": 0.5}
    assert analysis.grouped(imp) == pytest.approx({"width": 0.5, "norm": 0.4, "depth": 0.1})


def test_inactive_slots_of_older_studies_are_dropped() -> None:
    # a study written before define-by-run recorded the skipped slot s0.b1 with defaults
    params = {"s0.depth": 1, "s0.b0.norm": "groupnorm", "s0.b1.norm": "batchnorm",
              "arch.s1.depth": 2, "arch.s1.b1.norm": "none", "head.dropout": 0.0}  # fmt: skip
    assert analysis.active_params(params) == {
        "s0.depth": 1, "s0.b0.norm": "groupnorm", "arch.s1.depth": 2,
        "arch.s1.b1.norm": "none", "head.dropout": 0.0,
    }  # fmt: skip


def test_bootstrap_interval_of_a_difference_in_means() -> None:
    a, b = [0.9, 0.8, 0.85, 0.95], [0.5, 0.6, 0.55]
    diff, lo, hi = analysis.bootstrap_diff(a, b, n=4000)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert lo < diff < hi and lo > 0.2 and hi < 0.45  # well apart: the interval excludes 0
    same = analysis.bootstrap_diff([0.5, 0.7, 0.6], [0.55, 0.65, 0.6])
    assert same[1] < 0 < same[2]


def test_macro_study_importances_and_params_have_no_inactive_slot() -> None:
    """A macro study's trials record only active choices, so fANOVA (over the parameters
    every trial has) never lists a slot that some depth skips."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = MacroSpace.from_dict(SPACE)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))  # fmt: skip
    gain = {"batchnorm": 0.2, "groupnorm": 0.1}

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        return 0.5 + sum(gain.get(b.norm, 0.0) for s in arch.stages for b in s) / 4

    study.optimize(objective, n_trials=40)
    for t in study.trials:
        for i in range(len(SPACE["stages"])):
            if t.params[f"s{i}.depth"] == 1:
                assert not [k for k in t.params if k.startswith(f"s{i}.b1.")]
    imp = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    assert not [k for k in imp if ".b1." in k]  # depth 1 and 2 were both drawn in each stage
    assert {t.params["s0.depth"] for t in study.trials} == {1, 2}
    grouped = analysis.grouped(imp)
    assert next(iter(grouped)) == "norm"  # the only choice that changes the objective


def test_choice_shares_and_headline_of_a_real_study(digits_study: MadeStudy) -> None:
    from normnas.search.study import load_study, open_storage

    study = load_study("two", open_storage(digits_study.url, write=False))
    data = load(study, digits_study.url)
    stats = analysis.choice_stats(data, "norm")
    assert sum(stats.share_all.values()) == pytest.approx(1.0)
    assert sum(stats.share_top.values()) == pytest.approx(1.0)
    # shares by hand: every active norm slot of every successful trial
    slots = [v for t in study.trials if t.state.name == "COMPLETE"
             and t.user_attrs.get("duplicate_of") is None
             for k, v in t.params.items() if k.endswith(".norm")]  # fmt: skip
    for value, share in stats.share_all.items():
        assert share == pytest.approx(slots.count(value) / len(slots))
    top = analysis.top_share(data)
    assert len(top) == max(1, int(np.ceil(0.1 * len(data.evaluated))))
    assert top[0].number == data.chosen  # the best first objective is the chosen trial
    text = analysis.headline(data)
    f = analysis.finding(data, "norm", prefer="batchnorm")
    if f is not None:
        assert f"{abs(f.diff) * 100:.1f}" in text and f"{f.n_with} vs {f.n_without}" in text
