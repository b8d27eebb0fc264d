import numpy as np
import optuna
import pytest
from tests.search.helpers import TableEvaluator

from normnas.search import records as rec
from normnas.search.runner import Budget, run_search
from normnas.search.strategies import STRATEGIES, make_pruner, make_sampler
from normnas.spaces import NB201Space

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = NB201Space()


def _accuracies(strategy: str, seed: int, trials: int = 60) -> list[float]:
    study = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, SPACE, seed))
    run_search(study, SPACE, TableEvaluator(SPACE), Budget(trials=trials))
    return [r.values[0] for r in rec.records(study) if r.evaluated]


@pytest.fixture(scope="module")
def runs() -> dict[str, list[list[float]]]:
    return {
        s: [_accuracies(s, seed) for seed in range(8)]
        for s in ("random", "evolution", "local", "tpe")
    }


@pytest.mark.parametrize("strategy", ["random", "evolution", "local", "tpe"])
def test_each_strategy_improves_on_its_first_trials(runs, strategy):
    accs = runs[strategy]
    best_first = np.mean([max(a[:10]) for a in accs])
    best_all = np.mean([max(a) for a in accs])
    assert best_all > best_first + 0.005


@pytest.mark.parametrize("strategy", ["evolution", "local", "tpe"])
def test_guided_strategies_move_to_better_regions_and_beat_random(runs, strategy):
    accs = runs[strategy]
    first = np.mean([np.mean(a[:20]) for a in accs])
    last = np.mean([np.mean(a[-20:]) for a in accs])
    assert last > first + 0.01
    assert np.mean([max(a) for a in accs]) > np.mean([max(a) for a in runs["random"]])


@pytest.mark.parametrize("strategy", ["evolution", "local"])
def test_history_samplers_are_seeded_and_restart_safe(strategy):
    def archs(study: optuna.Study) -> list[str]:
        return [SPACE.to_str(SPACE.from_params(t.params)) for t in study.trials]

    ev = TableEvaluator(SPACE)
    full = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, SPACE, 3))
    run_search(full, SPACE, ev, Budget(trials=40))
    same = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, SPACE, 3))
    run_search(same, SPACE, ev, Budget(trials=40))
    assert archs(full) == archs(same)

    resumed = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, SPACE, 3))
    run_search(resumed, SPACE, ev, Budget(trials=17))
    resumed.sampler = make_sampler(strategy, SPACE, 3)  # a new process: fresh sampler state
    run_search(resumed, SPACE, ev, Budget(trials=40))
    assert archs(resumed) == archs(full)

    other = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, SPACE, 4))
    run_search(other, SPACE, ev, Budget(trials=40))
    assert archs(other) != archs(full)


def test_evolution_children_are_one_mutation_from_a_population_member():
    study = optuna.create_study(direction="maximize", sampler=make_sampler("evolution", SPACE, 0))
    run_search(study, SPACE, TableEvaluator(SPACE), Budget(trials=30), dedup=False)
    trials = study.trials
    for i, t in enumerate(trials[10:], start=10):
        child = SPACE.from_params(t.params)
        population = [SPACE.from_params(p.params) for p in trials[i - 10 : i]]
        assert any(
            sum(a != b for a, b in zip(child, parent, strict=True)) == 1 for parent in population
        )


def test_local_search_proposes_neighbours_of_the_best():
    study = optuna.create_study(direction="maximize", sampler=make_sampler("local", SPACE, 0))
    run_search(study, SPACE, TableEvaluator(SPACE), Budget(trials=10))
    t0, t1 = study.trials[0], study.trials[1]
    assert SPACE.from_params(t1.params) in SPACE.neighbors(SPACE.from_params(t0.params))


def test_grid_refuses_a_grid_over_the_limit_naming_its_size():
    with pytest.raises(ValueError, match="15,625 grid points, more than the limit 1,000"):
        make_sampler("grid", SPACE, limit=1000)
    assert make_sampler("grid", SPACE) is not None


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown strategy 'evo'; valid: .*evolution, grid"):
        make_sampler("evo", SPACE)
    with pytest.raises(ValueError, match="valid: none, sha, hyperband"):
        make_pruner("asha")


def test_registry_accepts_a_new_strategy_in_one_line():
    STRATEGIES["always_random"] = lambda space, seed=None, **o: optuna.samplers.RandomSampler(seed)
    try:
        assert isinstance(make_sampler("always_random", SPACE, 1), optuna.samplers.RandomSampler)
    finally:
        del STRATEGIES["always_random"]
