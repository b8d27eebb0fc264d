"""The report's fast paths give what Optuna gives: the trials read from an RDB storage, the
fANOVA importances, and the report of a study of 1,500 trials (its timing is
benchmarks/report_speed.py's, not a test's)."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, TrialState
from tests.report.page import parse
from tests.search.helpers import TableEvaluator

from normnas.report.fanova import FanovaEvaluator
from normnas.report.html_page import build_report
from normnas.search import records as rec
from normnas.search.runner import Budget, run_search
from normnas.search.study import load_study, open_storage, open_study, read_trials
from normnas.spaces import NB201Space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _same_trials(ours: list[FrozenTrial], optunas: list[FrozenTrial]) -> None:
    assert [t.number for t in ours] == [t.number for t in optunas]
    for a, b in zip(ours, optunas, strict=True):
        left, right = dict(a.__dict__), dict(b.__dict__)
        # NaN != NaN: the curves are compared by their text
        assert repr(left.pop("intermediate_values")) == repr(right.pop("intermediate_values"))
        assert left == right, a.number


def _mixed(trial: optuna.Trial) -> float:
    """Every kind of parameter Optuna stores, and a conditional one."""
    x = trial.suggest_float("x", -3, 3)
    lr = trial.suggest_float("lr", 1e-4, 1, log=True)
    n = trial.suggest_int("n", 1, 8)
    step = trial.suggest_float("step", 0, 1, step=0.25)
    kind = trial.suggest_categorical("kind", ["a", "b", "c", "d"])
    flag = trial.suggest_categorical("flag", [True, False, None])
    if kind == "a":
        trial.suggest_int("only_a", 0, 3)
    return x**2 + math.log(lr) * (n % 3) + "abcd".index(kind) + (flag is True) + step * x


def test_read_trials_reads_what_optuna_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study("s", open_storage(url), ["minimize", "maximize"])
    study.optimize(lambda t: (_mixed(t), -t.params["x"]), n_trials=25)
    storage = study._storage
    for values in ([math.inf, 1.0], [-math.inf, 2.0]):  # stored apart from finite values
        trial = study.ask()
        _mixed(trial)
        trial.set_user_attr("result", {"curve": [0.1, None], "note": "é"})
        for step, v in enumerate((math.nan, math.inf, -math.inf, 0.5)):
            storage.set_trial_intermediate_value(trial._trial_id, step, v)
        study.tell(trial, values)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    study.enqueue_trial({"x": 0.5}, user_attrs={"retry_of": 3})  # WAITING, system attrs
    running = study.ask()  # RUNNING: it pops the queued trial
    running.set_user_attr("worker", "host:1:2")
    study.enqueue_trial({"x": 0.25})
    fresh = load_study("s", open_storage(url, write=False))  # Optuna's own read, uncached
    _same_trials(read_trials(fresh), fresh.get_trials(deepcopy=False))


def test_read_trials_of_other_storages_is_optunas_read(tmp_path: Path) -> None:
    study = open_study("j", open_storage(f"journal:{tmp_path / 'j.journal'}"), ["minimize"])
    study.optimize(_mixed, n_trials=5)
    _same_trials(read_trials(study), study.get_trials(deepcopy=False))


def _importances(study: optuna.Study, evaluator: Any) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_param_importances(study, evaluator=evaluator, target=lambda t: t.values[0])


@pytest.mark.parametrize("trials", [3, 60])
def test_fanova_gives_optunas_importances(trials: int) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(_mixed, n_trials=trials)
    theirs = _importances(study, FanovaImportanceEvaluator(seed=0))
    ours = _importances(study, FanovaEvaluator(seed=0))
    assert list(ours) == list(theirs)  # same order: by importance
    assert all(math.isclose(ours[k], theirs[k], abs_tol=1e-12) for k in theirs), (ours, theirs)
    given = _importances(study, FanovaEvaluator(seed=0, trials=study.get_trials()))
    assert given == ours


def test_the_report_of_a_study_of_1500_trials_shows_each_of_them() -> None:
    space = NB201Space()
    study = optuna.create_study(
        study_name="big", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    run_search(study, space, TableEvaluator(space), Budget(trials=1500))
    records = rec.records(study)  # 1,500 evaluated, and the duplicates among them
    html = build_report(study, "in memory")
    assert f"<p>{len(records)} trials · accuracy" in html
    table = re.search(r'<table id="trial-table".*?<tbody>(.*?)</tbody>', html, re.S)
    assert table is not None
    numbers = [int(n) for n in re.findall(r'<tr[^>]*><td data-v="(\d+)\.0"', table.group(1))]
    assert sorted(numbers) == [r.number for r in records]  # every trial, once
    chosen = re.findall(r'<tr class="chosen-row"><td data-v="(\d+)\.0"', table.group(1))
    best = max((r for r in records if r.evaluated), key=lambda r: (r.values[0], -r.number))
    assert chosen == [str(best.number)]
    # fANOVA ran on all of them: every edge has its share, and together they are all of it
    text = parse(html).text("choices")
    shares = re.findall(r"(edge_\d<-\d): (\d+\.\d)%", text)
    assert {name for name, _ in shares} == set(space.param_names)
    assert math.isclose(sum(float(v) for _, v in dict(shares).items()), 100, abs_tol=0.5)
