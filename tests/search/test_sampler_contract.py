"""Our architecture samplers under Optuna's own reusable sampler tests, and our contract.

Optuna's `optuna.testing.pytest_samplers` test classes (basic, relative, multi-objective)
run against `evolution`, `local` and `additive` on NAS-Bench-201's space and on a small
macro space: the full matrix (756 cases, a few seconds) runs in the default suite. None is
skipped: tests whose parameters are no architecture (float ranges, ints, other
categoricals) exercise the fallback to the independent sampler, a RandomSampler seeded
from the sampler's seed. `SingleOnlySamplerTestCase` does not apply: our samplers support
multi-objective studies (they rank by the first objective).

The tests after them pin what those classes cannot see: fixed architecture parameters,
history trials that are not architectures of the space (including the race of two workers
where one reads a trial whose params are still being written), infinite results, and a
sampler object reused for a second study.
"""

from __future__ import annotations

import itertools
import warnings
import zlib
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)

from normnas.search.samplers._base import ArchSampler
from normnas.search.samplers.local import RESTART_ATTR
from normnas.search.strategies import make_sampler
from normnas.spaces import LayerSpace, MacroSpace, NB201Space
from normnas.spaces.base import SearchSpace

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACES: dict[str, SearchSpace] = {
    "nb201": NB201Space(),
    "macro": MacroSpace(  # 2 x 24^2 = 1,152 encodings: additive enumerates them at once
        stages=[{"widths": [8, 16], "min_blocks": 1, "max_blocks": 2, "stride": 1}],
        kernels=[3],
        norms=["batchnorm", "none"],
        activations=["relu"],
        dropout=[0.0],
    ),
    # conditional parameters: an optional layer and a repeat count decide what is active
    "layers": LayerSpace(
        [
            {"type": "conv", "filters": [8, 16], "norm": ["bn", "none"]},
            {"type": "pool", "kind": ["max", "avg"], "optional": True},
            {"type": "conv", "filters": 8, "kernel_size": [3, 5], "repeat": [1, 2]},
            {"type": "dense", "units": [16, 32], "optional": True},
        ],
        input_size=8,
    ),
}
STRATEGIES = ("evolution", "local", "additive")
CASES = [(s, sp) for s in STRATEGIES for sp in SPACES]


class _OurSamplers:
    @pytest.fixture(params=CASES, ids=[f"{s}-{sp}" for s, sp in CASES])
    def sampler(self, request: pytest.FixtureRequest) -> Any:
        strategy, space = request.param
        return lambda: make_sampler(strategy, SPACES[space], seed=0)


class TestOptunaBasic(_OurSamplers, BasicSamplerTestCase):
    pass


class TestOptunaRelative(_OurSamplers, RelativeSamplerTestCase):
    pass


class TestOptunaMultiObjective(_OurSamplers, MultiObjectiveSamplerTestCase):
    pass


# -- our contract -----------------------------------------------------------------------------
def _value(space: SearchSpace, arch: Any) -> float:
    """A fixed, arbitrary score per architecture."""
    return zlib.crc32(space.to_str(space.canonical(arch)).encode()) % 1000 / 1000


def _objective(space: SearchSpace):  # type: ignore[no-untyped-def]
    return lambda trial: _value(space, space.suggest(trial))


def _sampler(strategy: str, space: SearchSpace, **options: Any) -> ArchSampler:
    sampler = make_sampler(strategy, space, seed=0, **options)
    assert isinstance(sampler, ArchSampler)
    return sampler


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fixed_architecture_parameters_are_kept(strategy: str, space_name: str) -> None:
    space = SPACES[space_name]
    name, dist = next(iter(space.distributions().items()))
    fixed = dist.choices[-1]  # type: ignore[attr-defined]
    study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, space))
    study.optimize(_objective(space), n_trials=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.PartialFixedSampler({name: fixed}, study.sampler)
    study.optimize(_objective(space), n_trials=12)
    later = study.trials[12:]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in later)
    assert all(t.params[name] == fixed for t in later)


def test_sample_relative_returns_exactly_the_names_it_is_given() -> None:
    space = SPACES["nb201"]
    sampler = _sampler("evolution", space)
    study = optuna.create_study(sampler=sampler)
    some = dict(list(space.distributions().items())[2:4])
    other = {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}
    trial = study._storage.get_trial(study._storage.create_new_trial(study._study_id))
    params = sampler.sample_relative(study, trial, {**some, **other})
    assert set(params) == {*some, "lr"}
    assert all(params[n] in d.choices for n, d in some.items())  # type: ignore[attr-defined]
    assert 1e-3 <= params["lr"] <= 1.0


def _add(study: optuna.Study, params: dict[str, Any], dists: dict[str, Any], value: float) -> None:
    study.add_trial(optuna.create_trial(params=params, distributions=dists, value=value))


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_history_that_is_not_an_architecture_is_skipped(strategy: str, space_name: str) -> None:
    space = SPACES[space_name]
    # a small population and a big tournament: an unreadable best trial would be the parent
    options = {"population_size": 3, "sample_size": 8} if strategy == "evolution" else {}
    options |= {"n_startup": 2} if strategy == "additive" else {}
    sampler = _sampler(strategy, space, **options)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective(space), n_trials=3)
    dists = space.distributions()
    good = space.to_params(space.sample(np.random.default_rng(1)))
    name = next(iter(dists))
    wider = CategoricalDistribution((*dists[name].choices, "bogus"))  # type: ignore[attr-defined]
    # the best results of the study, none of them an architecture of this space
    _add(study, {"x": 0.5}, {"x": optuna.distributions.FloatDistribution(0, 1)}, 10.0)
    recorded = {n: dists[n] for n in good}  # all of them, or the active ones (LayerSpace)
    _add(study, {**good, name: "bogus"}, {**recorded, name: wider}, 10.0)
    partial = dict(list(good.items())[:-1])
    _add(study, partial, {n: dists[n] for n in partial}, 10.0)
    # an architecture plus a parameter of the objective's own: an architecture all the same
    extra = {"lr": optuna.distributions.FloatDistribution(0, 1)}
    _add(study, {**good, "lr": 0.1}, {**recorded, **extra}, 0.0)
    study.optimize(_objective(space), n_trials=4)

    archs = [t.number for t in study.trials if t.number not in (3, 4, 5)]
    assert [s.number for s in sampler.history(study)] == archs
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_trial_whose_params_are_being_written_elsewhere_is_skipped(
    strategy: str, space_name: str
) -> None:
    """Two workers: trial 0 asked its first parameter only (its `suggest` is under way)."""
    space = SPACES[space_name]
    study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, space))
    first = study.ask()
    name, dist = next(iter(space.distributions().items()))
    first.suggest_categorical(name, dist.choices)  # type: ignore[attr-defined]
    assert len(study.trials[0].params) == 1

    second = study.ask()
    arch = space.suggest(second)  # `local` crashed here: missing parameter
    assert space.from_params(study.trials[1].params) == arch
    if strategy == "local":  # it joins the segment trial 0 started rather than starting one
        assert study.trials[0].system_attrs.get(RESTART_ATTR)
        assert not study.trials[1].system_attrs.get(RESTART_ATTR)


@pytest.mark.parametrize(("direction", "bad"), [("maximize", "inf"), ("minimize", "-inf")])
def test_additive_ignores_infinite_results(direction: str, bad: str) -> None:
    space = SPACES["nb201"]
    sampler = _sampler("additive", space, n_startup=5)
    study = optuna.create_study(direction=direction, sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        value = _value(space, space.suggest(trial))
        return float(bad) if trial.number in (2, 7) else value

    study.optimize(objective, n_trials=20)
    assert not sampler.exhausted  # a NaN fit used to declare the space exhausted
    keys = [sampler.key(space.from_params(t.params)) for t in study.trials]
    assert len(set(keys)) == len(keys)  # each proposal an untried class, as the model makes


def test_evolution_ignores_an_infinite_result_as_parent() -> None:
    space = SPACES["nb201"]
    sampler = _sampler("evolution", space, population_size=1, sample_size=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    a = ("nor_conv_3x3",) * 6
    b = ("none",) * 6  # far from a: a child of b cannot be one mutation from a
    dists = space.distributions()
    _add(study, space.to_params(a), dists, 0.5)
    _add(study, space.to_params(b), dists, float("inf"))
    study.optimize(_objective(space), n_trials=5)
    # population of 1 = the last finite result; with a population of 1, each child mutates
    # the previous finite trial
    archs = [space.from_params(t.params) for t in study.trials]
    assert sum(x != y for x, y in zip(archs[2], a, strict=True)) == 1
    for parent, child in itertools.pairwise(archs[2:]):
        assert sum(x != y for x, y in zip(parent, child, strict=True)) == 1


FOUR = MacroSpace(  # 4 architectures, 4 canonical classes
    stages=[{"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
    kernels=[3],
    norms=["batchnorm", "none"],
    placements=["conv_norm_act", "norm_act_conv"],
    activations=["relu"],
    residual=[False],
    dropout=[0.0],
)


def test_a_sampler_reused_for_another_study_starts_afresh() -> None:
    sampler = _sampler("additive", FOUR, n_startup=0)
    first = optuna.create_study(direction="maximize", sampler=sampler)
    first.optimize(_objective(FOUR), n_trials=5)
    assert sampler.exhausted and sampler.exhausted_for(first)

    second = optuna.create_study(direction="maximize", sampler=sampler)
    assert not sampler.exhausted_for(second)
    second.optimize(_objective(FOUR), n_trials=4)
    keys = {sampler.key(FOUR.from_params(t.params)) for t in second.trials}
    assert len(keys) == 4  # each class once: its own history, not the first study's
    assert not sampler.exhausted_for(first)  # it now reads the second study
