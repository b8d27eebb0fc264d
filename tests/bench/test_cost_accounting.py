"""The table evaluator under the standard runner: budget crossing, equivalents, cost sums."""

import optuna
import pytest
from tests.bench.conftest import SPACE, write_table

from normnas.bench.runs import Context, search_once
from normnas.bench.table import NB201Table, TableEvaluator
from normnas.search import records as rec
from normnas.search.runner import Budget, run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def ctx(synthetic_table) -> Context:
    return Context(NB201Table.load(synthetic_table))


@pytest.fixture(scope="module")
def varied_ctx(tmp_path_factory) -> Context:
    """Per-cell epoch times 1..9 s, so sums and the crossing query are not trivially even."""
    path = tmp_path_factory.mktemp("varied") / "varied.csv"
    write_table(path, epoch_s=lambda a: 1.0 + sum(len(op) for op in a) % 9)
    return Context(NB201Table.load(path))


def _evaluated(study: optuna.Study) -> list[rec.TrialRecord]:
    return [r for r in rec.records(study) if r.evaluated]


@pytest.mark.parametrize("strategy", ["random", "evolution", "additive"])
@pytest.mark.parametrize("budget", [1000.0, 2500.0])
def test_queries_go_on_while_spent_is_below_budget_and_the_crossing_one_counts(
    varied_ctx, strategy, budget
):
    study, summary = search_once(varied_ctx, strategy, 3, budget, {})
    costs = [r.result["cost_s"] for r in _evaluated(study)]
    assert summary.stopped_by == "cost"
    assert sum(costs) == pytest.approx(summary.spent_cost_s)
    assert sum(costs[:-1]) < budget <= sum(costs)  # the last query crossed and counted


def test_spent_cost_is_the_table_cost_of_the_distinct_cells_queried(varied_ctx):
    study, summary = search_once(varied_ctx, "random", 11, 3000.0, {})
    table = varied_ctx.table
    keys = {}
    for r in _evaluated(study):
        keys.setdefault(r.key, table.query_cost_s(table.row(r.arch)))
    assert len(keys) == len(_evaluated(study)) == summary.n_evaluated
    assert sum(keys.values()) == pytest.approx(summary.spent_cost_s)


def test_equivalent_cells_are_charged_once(ctx):
    a = ("nor_conv_3x3", "none", "none", "none", "skip_connect", "none")
    twin = ("skip_connect", "none", "none", "none", "nor_conv_3x3", "none")
    other = ("nor_conv_1x1",) * 6
    study = optuna.create_study(direction="maximize")
    for arch in (a, twin, a, other):
        study.enqueue_trial(SPACE.to_params(arch))
    summary = run_search(study, SPACE, TableEvaluator(ctx.table, SPACE), Budget(trials=2))
    assert summary.n_evaluated == 2 and summary.n_duplicates == 2
    assert summary.spent_cost_s == pytest.approx(2 * 12 * 10.0)


def test_the_pick_is_the_best_valid_accuracy_seen(ctx):
    study, summary = search_once(ctx, "random", 5, 3000.0, {})
    evaluated = _evaluated(study)
    best = max(r.values[0] for r in evaluated)
    first = min(r.number for r in evaluated if r.values[0] == best)
    assert summary.best.number == first
