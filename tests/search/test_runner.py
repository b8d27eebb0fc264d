import math
from typing import ClassVar

import optuna
import pytest
from optuna.trial import TrialState
from tests.search.helpers import TableEvaluator, TinyEvaluator, TinySpace, table

from normnas.search import records as rec
from normnas.search.result import TrialResult
from normnas.search.runner import Budget, Constraints, run_search
from normnas.search.strategies import make_pruner, make_sampler
from normnas.spaces import NB201Space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(strategy: str = "random", space=None, seed: int = 0, **kw) -> optuna.Study:
    space = space or NB201Space()
    return optuna.create_study(
        direction="maximize", sampler=make_sampler(strategy, space, seed), **kw
    )


def test_trial_budget_counts_evaluated_trials_and_dedups():
    space = NB201Space()
    ev = TableEvaluator(space)
    study = _study()
    s = run_search(study, space, ev, Budget(trials=120))
    recs = rec.records(study)
    evaluated = [r for r in recs if r.evaluated]
    assert s.n_total == s.n_evaluated == len(evaluated) == ev.calls == 120
    keys = [r.key for r in evaluated]
    assert len(set(keys)) == len(keys)  # no architecture class trained twice
    dups = [r for r in recs if r.duplicate_of is not None]
    assert s.n_duplicates == len(dups) > 0  # random search on NB201 repeats equivalent cells
    for d in dups:
        original = recs[d.duplicate_of]
        assert d.values == original.values
        assert d.arch == original.arch and d.key == original.key
        assert space.canonical(space.from_params(d.params)) == space.from_str(original.key)
    assert s.best.values[0] == max(r.values[0] for r in evaluated)
    assert s.stopped_by == "trials"


def test_cost_budget_the_crossing_query_counts():
    space = NB201Space()
    study = _study()
    s = run_search(study, space, TableEvaluator(space), Budget(cost_s=3000.0))
    costs = [r.result["cost_s"] for r in rec.records(study) if r.evaluated]
    assert s.stopped_by == "cost"
    assert math.isclose(sum(costs), s.spent_cost_s)
    assert sum(costs) >= 3000.0 > sum(costs[:-1])


def test_constraints_make_infeasible_trials_free_and_failed():
    space = NB201Space()
    ev = TableEvaluator(space)
    study = _study()
    limit = 400_000
    s = run_search(study, space, ev, Budget(trials=40), constraints=Constraints(max_params=limit))
    recs = rec.records(study)
    infeasible = [r for r in recs if r.status == "infeasible" and r.duplicate_of is None]
    assert s.n_infeasible == len(infeasible) > 0
    assert all(r.state == TrialState.FAIL and r.result["params"] > limit for r in infeasible)
    assert ev.calls == 40 == s.n_total
    assert all(r.result["params"] <= limit for r in recs if r.evaluated)


def test_failures_are_recorded_and_the_search_goes_on():
    space = TinySpace()
    ev = TinyEvaluator(fail={(2, "y")})
    study = _study("grid", space)
    s = run_search(study, space, ev, Budget(trials=100))
    assert s.stopped_by == "exhausted" and s.n_total == 6
    bad = [r for r in rec.records(study) if r.arch == "2y"]
    assert bad[0].state == TrialState.FAIL and bad[0].status == "failed"
    assert bad[0].result["error"] == "RuntimeError: boom"
    assert s.best.arch == "2x"


def test_a_second_run_continues_to_the_same_total():
    space = NB201Space()
    ev = TableEvaluator(space)
    study = _study("evolution")
    run_search(study, space, ev, Budget(trials=15))
    again = run_search(study, space, ev, Budget(trials=15))
    assert again.n_evaluated == 0 and again.n_total == 15
    more = run_search(study, space, ev, Budget(trials=25))
    assert more.n_evaluated == 10 and more.n_total == 25 == ev.calls


def test_an_exhausted_space_stops_the_search():
    space = TinySpace()
    s = run_search(_study("random", space), space, TinyEvaluator(), Budget(trials=10))
    assert s.n_total == 6 and s.stopped_by == "exhausted"


def _one_architecture_space():  # type: ignore[no-untyped-def]
    from normnas.spaces import MacroSpace

    return MacroSpace.from_dict(
        {
            "stages": [{"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
            "kernels": [3], "norms": ["batchnorm"], "placements": ["conv_norm_act"],
            "activations": ["relu"], "residual": [False], "dropout": [0.0],
        }
    )  # fmt: skip


class _Fixed:
    """A cheap judge of any architecture (the search loop is what these tests are about)."""

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, arch, fidelity=None, report=None) -> TrialResult:  # type: ignore[no-untyped-def]
        self.calls += 1
        return TrialResult(status="ok", accuracy=0.5, cost_s=1.0)


def test_a_space_of_one_architecture_stops_once_it_has_a_result():
    space = _one_architecture_space()
    study = _study("random", space)
    ev = _Fixed()
    s = run_search(study, space, ev, Budget(trials=2))
    # it used to ask 1,000 duplicates (1,001 trial rows) before stopping on the streak
    assert s.stopped_by == "exhausted" and s.extra["space_size"] == 1
    assert len(study.trials) == 1 and s.n_duplicates == 0 and ev.calls == 1
    again = run_search(study, space, ev, Budget(trials=5))  # nothing new left: no new row
    assert again.stopped_by == "exhausted" and len(study.trials) == 1 and ev.calls == 1


def test_a_sampler_stuck_in_a_small_space_stops_after_a_few_repeats():
    space = TinySpace()  # 6 architectures
    stuck = optuna.samplers.PartialFixedSampler(
        {"a": 0, "b": "x"}, optuna.samplers.RandomSampler(seed=0)
    )
    study = optuna.create_study(direction="maximize", sampler=stuck)
    s = run_search(study, space, TinyEvaluator(), Budget(trials=3))
    assert s.stopped_by == "duplicates" and s.n_evaluated == 1
    assert s.n_duplicates == 10 * 6  # 10 x the space's size, not max(10 x budget, 1000)
    assert len(study.trials) == 1 + 10 * 6


class _EightSpace(TinySpace):
    """a in 0..7, b always x: three architectures in common with TinySpace (0x, 1x, 2x)."""

    _choices: ClassVar[dict] = {"n": tuple(range(8))}  # its own name: no clash with "a"

    def suggest(self, trial):  # type: ignore[no-untyped-def]
        return (trial.suggest_categorical("n", self._choices["n"]), "x")

    def from_params(self, params):  # type: ignore[no-untyped-def]
        return (params["n"], "x")

    def to_params(self, arch):  # type: ignore[no-untyped-def]
        return {"n": arch[0]}

    def from_str(self, text):  # type: ignore[no-untyped-def]
        if len(text) != 2 or not text[0].isdigit() or int(text[0]) > 7 or text[1] != "x":
            raise ValueError(f"not an architecture of this space: {text!r}")
        return (int(text[0]), text[1])

    def __len__(self) -> int:
        return 8


def test_results_of_another_space_do_not_make_this_one_exhausted():
    study = _study("random", TinySpace())
    run_search(study, TinySpace(), TinyEvaluator(), Budget(trials=6))  # its six
    space = _EightSpace()  # e.g. the space changed and the study was rerun with --force
    s = run_search(study, space, TinyEvaluator(), Budget(trials=20))
    # the study held 6 results, 3 of them this space's: it used to stop as soon as it had
    # 8 results of any space (5 of its own); now when all 8 of its own have one
    assert s.stopped_by == "exhausted"
    keys = {r.key for r in rec.records(study) if r.evaluated}
    assert {f"{a}x" for a in range(8)} <= keys


def test_duplicate_streak_stops_a_space_of_unknown_size():
    class Unsized:
        def __init__(self) -> None:
            self.inner = TinySpace()

        def __getattr__(self, name):
            if name == "__len__":
                raise AttributeError(name)
            return getattr(self.inner, name)

    space = Unsized()
    s = run_search(_study("random", space), space, TinyEvaluator(), Budget(trials=10))
    assert s.n_total == 6 and s.stopped_by == "duplicates" and s.n_duplicates >= 1000


def test_sha_pruner_prunes_through_the_report_function():
    space = NB201Space()
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler("random", space, 0),
        pruner=make_pruner("sha", min_resource=1, reduction_factor=2),
    )

    class Curves(TableEvaluator):
        def evaluate(self, arch, fidelity=None, report=None):
            final = super().evaluate(arch)
            for step in range(4):
                acc = final.accuracy * (step + 1) / 4
                if report is not None and report(step, acc):
                    final.status = "pruned"
                    break
            return final

    s = run_search(study, space, Curves(space), Budget(trials=30))
    pruned = [
        t
        for t in study.trials
        if t.state == TrialState.PRUNED and "duplicate_of" not in t.user_attrs
    ]
    assert s.n_pruned == len(pruned) > 0
    assert all(t.intermediate_values and t.user_attrs["status"] == "pruned" for t in pruned)


def test_multi_objective_returns_a_pareto_front():
    space = NB201Space()
    study = optuna.create_study(
        directions=rec.directions(["accuracy", "params"]),
        sampler=make_sampler("nsga2", space, 0, population_size=10),
    )
    s = run_search(study, space, TableEvaluator(space), Budget(trials=40), ("accuracy", "params"))
    front = s.best_trials
    assert len(front) >= 2
    accs = [r.values[0] for r in front]
    params = [r.values[1] for r in front]
    assert accs == sorted(accs, reverse=True) and params == sorted(params, reverse=True)


def test_study_directions_must_match_objectives():
    space = NB201Space()
    with pytest.raises(ValueError, match="do not match"):
        run_search(_study(), space, TableEvaluator(space), Budget(trials=1), ("params",))
    with pytest.raises(ValueError, match="valid: accuracy, params, flops, latency"):
        run_search(_study(), space, TableEvaluator(space), Budget(trials=1), ("acc",))


def test_table_helper_is_complete():
    assert len(table()) == 15_625


def test_train_evaluator_records_macs_and_flops() -> None:
    from types import SimpleNamespace

    from normnas.search.evaluators import TrainEvaluator
    from normnas.search.runner import Constraints
    from normnas.spaces.nb201 import NB201Space

    data = SimpleNamespace(image_size=(32, 32), in_channels=3, num_classes=10)
    ev = TrainEvaluator(NB201Space(), data, constraints=Constraints(max_flops=1.0))
    r = ev.evaluate(("avg_pool_3x3",) * 6)
    # pooling counts (7,741,440 ops beyond the stem/reduction/classifier multiply-adds)
    assert r.status == "infeasible" and r.macs == 7_783_040 and r.flops == 16_081_536
    assert ev.cost_metrics(("avg_pool_3x3",) * 6, ["macs"]) == {"macs": 7_783_040}


class _TakenForDead(TableEvaluator):
    """On its 3rd query, another run (simulated by the real recovery call) takes the
    trial being evaluated for dead and re-queues it, as a late claim under load allows."""

    def __init__(self, space: NB201Space, study: optuna.Study) -> None:
        super().__init__(space)
        self.study = study

    def evaluate(self, arch, fidelity=None, report=None):
        if self.calls == 2:
            from normnas.search.study import recover_interrupted

            assert len(recover_interrupted(self.study, force=True)) == 1
        return super().evaluate(arch, fidelity, report)


def test_a_trial_re_queued_under_a_live_run_is_run_once_by_its_copy(capsys):
    space = NB201Space()
    study = _study()
    s = run_search(study, space, _TakenForDead(space, study), Budget(trials=5))
    assert "re-queued by another run" in capsys.readouterr().err
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].number == 2  # the taken trial, told nothing twice
    retry = [t for t in trials if t.user_attrs.get(rec.ATTR_RETRY) == 2]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == failed[0].params  # the queued copy ran the same architecture
    assert s.n_evaluated == 5 and s.stopped_by == "trials"


class _Display:
    """A progress display that remembers what it was shown (the runner draws nothing)."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.closed = 0

    def update(self, event) -> None:
        self.numbers.append(event.number)

    def close(self) -> None:
        self.closed += 1


def test_a_display_sees_every_trial_before_the_callback_and_is_closed_however_the_loop_ends():
    space = NB201Space()
    display, seen = _Display(), []
    study = _study()
    callback = lambda e: seen.append((e.number, list(display.numbers)))  # noqa: E731
    s = run_search(study, space, TableEvaluator(space), Budget(trials=5), progress=display,
                   callback=callback)  # fmt: skip
    assert display.numbers == [t.number for t in study.trials] == [n for n, _ in seen]
    assert all(shown[-1] == n for n, shown in seen)  # the display was shown it first
    assert display.closed == 1 and s.n_evaluated == 5
    # an error before the first trial (objectives that do not fit the study) closes it too
    failing = _Display()
    with pytest.raises(ValueError, match="directions"):
        run_search(_study(), space, TableEvaluator(space), Budget(trials=1),
                   ("accuracy", "params"), progress=failing)  # fmt: skip
    assert failing.closed == 1 and failing.numbers == []
