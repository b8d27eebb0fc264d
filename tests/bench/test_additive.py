"""The `additive` strategy: deterministic properties, not a noisy race against random."""

import optuna
import pytest
from tests.bench.conftest import SPACE, additive_valid, write_table

from normnas.bench.runs import Context, search_once
from normnas.bench.table import NB201Table, TableEvaluator
from normnas.search import records as rec
from normnas.search.runner import Budget, run_search
from normnas.search.strategies import make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def additive_ctx(tmp_path_factory) -> Context:
    """Valid accuracy additive in the canonical cell's ops (equivalent cells share it)."""
    path = tmp_path_factory.mktemp("add") / "additive.csv.gz"
    write_table(path, valid=lambda a: additive_valid(SPACE.canonical(a), seed=3))
    return Context(NB201Table.load(path))


def _archs(study: optuna.Study) -> list[str]:
    return [r.arch for r in rec.records(study)]


@pytest.mark.parametrize("seed", range(4))
def test_recovers_the_exact_optimum_of_an_additive_landscape(additive_ctx, seed):
    # 60 queries of 4,930 classes; random search would find the optimum ~1% of the time
    _, summary = search_once(additive_ctx, "additive", seed, 60 * 120.0, {})
    assert summary.best.values[0] * 100 == pytest.approx(additive_ctx.table.valid_acc_12ep.max())


def test_never_proposes_a_cell_equivalent_to_one_already_tried(additive_ctx):
    _, summary = search_once(additive_ctx, "additive", 1, 150 * 120.0, {})
    assert summary.n_duplicates == 0 and summary.n_evaluated == 150


def test_proposals_depend_only_on_the_study_history(additive_ctx):
    ev = TableEvaluator(additive_ctx.table, additive_ctx.space)

    def study(seed: int) -> optuna.Study:
        sampler = make_sampler("additive", additive_ctx.space, seed=seed)
        return optuna.create_study(direction="maximize", sampler=sampler)

    whole = study(4)
    run_search(whole, SPACE, ev, Budget(trials=45))
    resumed = study(4)
    run_search(resumed, SPACE, ev, Budget(trials=30))
    resumed.sampler = make_sampler("additive", additive_ctx.space, seed=4)  # a new process
    run_search(resumed, SPACE, ev, Budget(trials=45))
    assert _archs(resumed) == _archs(whole)


def test_startup_length_is_the_models_free_parameters():
    sampler = make_sampler("additive", SPACE, seed=0)
    assert sampler.n_startup == 1 + 6 * (5 - 1)


def test_rejects_non_categorical_spaces():
    class Floaty:
        name = "floaty"

        def distributions(self):
            return {"lr": optuna.distributions.FloatDistribution(1e-4, 1.0)}

    with pytest.raises(ValueError, match="'lr' is FloatDistribution"):
        make_sampler("additive", Floaty(), seed=0)
