import numpy as np
import optuna
import pytest
from tests.search.helpers import TableEvaluator

from normnas.errors import ConfigError
from normnas.search import records as rec
from normnas.search.runner import Budget, run_search
from normnas.search.strategies import STRATEGIES, make_pruner, make_sampler, options_from
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


# -- options: checked against the factory's parameters, one ConfigError line ------------------
def _one_line_config_error(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and excinfo.value.__cause__ is None
    return message


def test_an_unknown_strategy_option_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as excinfo:
        make_sampler("evolution", SPACE, 0, populaton_size=8)
    assert _one_line_config_error(excinfo) == (
        "strategy_options: unknown option 'populaton_size' for strategy 'evolution'; "
        "allowed: population_size, sample_size"
    )


@pytest.mark.parametrize(
    ("strategy", "allowed"),
    [
        ("local", "allowed: restart_tries"),
        ("additive", "allowed: n_startup, ridge"),
        ("grid", "allowed: limit"),
        ("random", "allowed: (none)"),
        ("tpe", "n_startup_trials, n_ei_candidates"),  # TPESampler's own keyword parameters
        ("nsga2", "allowed: population_size, mutation"),
    ],
)
def test_each_strategy_checks_its_options(strategy, allowed):
    with pytest.raises(ConfigError, match="unknown option 'foo' for strategy") as excinfo:
        make_sampler(strategy, SPACE, 0, foo=1)
    assert allowed in _one_line_config_error(excinfo)
    assert "seed" not in str(excinfo.value).split("allowed:")[1]  # the run's seed, not an option


@pytest.mark.parametrize(
    ("strategy", "options", "message"),
    [
        ("evolution", {"population_size": 0}, "population_size must be an integer >= 1, got 0"),
        ("evolution", {"sample_size": "3"}, "sample_size must be an integer >= 1, got '3'"),
        ("local", {"restart_tries": 0}, "restart_tries must be an integer >= 1, got 0"),
        ("additive", {"ridge": 0}, "ridge must be a finite number > 0, got 0"),
        ("additive", {"n_startup": -1}, "n_startup must be an integer >= 0, got -1"),
        ("grid", {"limit": 0}, "limit must be an integer >= 1, got 0"),
        ("nsga2", {"population_size": 1}, "`population_size` must be greater than or equal to 2"),
    ],
)
def test_a_bad_option_value_is_one_line_naming_the_option(strategy, options, message):
    with pytest.raises(ConfigError) as excinfo:
        make_sampler(strategy, SPACE, 0, **options)
    assert _one_line_config_error(excinfo).startswith(
        f"strategy_options: strategy {strategy!r}: {message}"
    )


def test_valid_options_reach_the_sampler():
    evolution = make_sampler("evolution", SPACE, 0, population_size=4, sample_size=2)
    assert (evolution.population_size, evolution.sample_size) == (4, 2)
    additive = make_sampler("additive", SPACE, 0, n_startup=7, ridge=0.5)
    assert (additive.n_startup, additive.ridge) == (7, 0.5)


def test_pruner_options_are_checked_by_the_pruners_name():
    with pytest.raises(ConfigError) as excinfo:
        make_pruner("sha", min_resources=1)
    assert _one_line_config_error(excinfo) == (
        "pruner_options: unknown option 'min_resources' for pruner 'sha'; "
        "allowed: min_resource, reduction_factor, min_early_stopping_rate, bootstrap_count"
    )
    with pytest.raises(ConfigError, match="for pruner 'none'; allowed: \\(none\\)"):
        make_pruner("none", min_resource=1)
    with pytest.raises(ConfigError) as excinfo:
        make_pruner("sha", reduction_factor="3")  # a str compared with an int inside
    assert _one_line_config_error(excinfo).startswith(
        "pruner_options: pruner 'sha': rejected reduction_factor='3': "
    )
    with pytest.raises(ConfigError, match=r"^pruner_options: pruner 'sha': .*`min_resource`"):
        make_pruner("sha", min_resource=0)
    assert make_pruner("sha", min_resource=2, reduction_factor=3) is not None


def test_a_registered_factory_may_name_the_class_its_options_go_to():
    @options_from(optuna.samplers.TPESampler)
    def tpe(space, seed=None, **options):  # type: ignore[no-untyped-def]
        return optuna.samplers.TPESampler(seed=seed, **options)

    STRATEGIES["my_tpe"] = tpe
    STRATEGIES["open"] = lambda space, seed=None, **o: optuna.samplers.RandomSampler(seed, **o)
    try:
        assert make_sampler("my_tpe", SPACE, 0, n_startup_trials=3)._n_startup_trials == 3
        with pytest.raises(ConfigError, match="unknown option 'n_startup' for strategy 'my_tpe'"):
            make_sampler("my_tpe", SPACE, 0, n_startup=3)
        # an unmarked **options factory: the class it calls decides, still one line
        with pytest.raises(ConfigError) as excinfo:
            make_sampler("open", SPACE, 0, foo=1)
        assert _one_line_config_error(excinfo).startswith("strategy_options: strategy 'open': ")
        assert "'foo'" in str(excinfo.value)
    finally:
        del STRATEGIES["my_tpe"], STRATEGIES["open"]


def test_unknown_strategy_and_pruner_names_are_config_errors():
    with pytest.raises(ConfigError, match=r"^unknown strategy 'evo'; valid: additive, evolution"):
        make_sampler("evo", SPACE)
    with pytest.raises(ConfigError, match=r"^unknown pruner 'asha'; valid: none, sha, hyperband$"):
        make_pruner("asha")
