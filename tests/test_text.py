"""Counts in the output: "1 trial", never "1 trials"."""

from __future__ import annotations

import io

from normnas.text import plural


def test_plural() -> None:
    assert plural(1, "trial") == "1 trial"
    assert [plural(n, "epoch") for n in (0, 2, 12)] == ["0 epochs", "2 epochs", "12 epochs"]
    assert plural(1, "study", "studies") == "1 study" and plural(3, "study", "studies") == (
        "3 studies"
    )
    assert plural(1.0, "second") == "1 second" and plural(2.5, "second") == "2.5 seconds"
    assert plural("?", "trial") == "? trials"  # a count not recorded


def test_progress_lines_of_a_one_trial_budget_and_of_no_trial_budget() -> None:
    from normnas.report.progress import PlainProgress
    from normnas.search.events import TrialEvent
    from normnas.search.runner import Budget

    out = io.StringIO()
    one = Budget(trials=1)
    PlainProgress(one, ("accuracy",), stream=out).update(
        TrialEvent(0, "ok", None, (0.5,), 1, 1.0, 2.0, one)
    )
    timed = Budget(wall_s=60)
    PlainProgress(timed, ("accuracy", "latency"), stream=out).update(
        TrialEvent(4, "ok", None, (0.5, 0.1234), 1, 1.0, 2.0, timed)
    )
    assert out.getvalue().splitlines() == [
        "trial   0 ok         accuracy 50.00%   best 50.00%  [1/1 trial, 2.0s]",
        "trial   4 ok         accuracy 50.00%  latency 0.12 ms  best 50.00%  [1 trial, 2.0s]",
    ]


def test_a_search_whose_one_trial_failed_says_trial() -> None:
    import optuna

    from normnas.search import records as rec
    from normnas.search.result import TrialResult
    from normnas.search.setup import failure_of

    study = optuna.create_study()
    trial = study.ask()
    attrs = rec.result_attrs("a", "a", "failed", TrialResult("failed", error="boom"))
    rec.write_result(study, trial._trial_id, attrs)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert str(failure_of(study, None)) == (
        "0 of 1 trial succeeded: 1 failed; first error (#0): boom"
    )
