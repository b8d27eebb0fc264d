"""RecipeSpace and JointSpace: params, strings, moves, and a real Optuna trial."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
import torch

from normnas.spaces import (
    SCHEDULES,
    JointSpace,
    MacroSpace,
    NB201Space,
    Recipe,
    RecipeSpace,
    SearchSpace,
)

recipes = RecipeSpace()
BASE = Recipe(
    lr=0.1,
    schedule="cosine",
    optimizer="sgd",
    weight_decay=5e-4,
    wd_on_norm_and_bias=False,
    bn_momentum=0.1,
    batch_size=128,
    label_smoothing=0.0,
)


def setup_module() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_recipe_space_is_a_search_space() -> None:
    assert isinstance(recipes, SearchSpace)
    assert SCHEDULES == (
        "constant", "step", "multistep", "cosine", "warmup_cosine", "onecycle", "linear",
    )  # fmt: skip
    dists = recipes.distributions()
    assert list(dists) == [f.name for f in dataclasses.fields(Recipe)]
    assert dists["lr"].log and isinstance(dists["lr"], optuna.distributions.FloatDistribution)
    assert dists["optimizer"].choices == ("sgd", "adamw")


def test_recipe_round_trips() -> None:
    rng = np.random.default_rng(0)
    samples = [recipes.sample(rng) for _ in range(50)]
    assert len(set(samples)) == 50
    for r in [BASE, *samples]:
        assert recipes.from_params(recipes.to_params(r)) == r
        assert recipes.from_str(recipes.to_str(r)) == r
        assert 1e-3 <= r.lr <= 0.5 and 1e-6 <= r.weight_decay <= 1e-2
    assert recipes.to_str(BASE).startswith(
        "lr=0.1 schedule=cosine optimizer=sgd weight_decay=0.0005"
    )
    # lr is log-uniform: about half the samples fall below the geometric middle of the range
    lrs = np.array([recipes.sample(rng).lr for _ in range(400)])
    assert 0.4 < np.mean(lrs < np.sqrt(1e-3 * 0.5)) < 0.6


def test_recipe_moves() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        r = recipes.sample(rng)
        child = recipes.mutate(r, rng)
        changed = [k for k, v in r.as_dict().items() if getattr(child, k) != v]
        assert len(changed) == 1
        if changed[0] == "lr":
            ratio = child.lr / r.lr
            assert (
                ratio == pytest.approx(2.0)
                or ratio == pytest.approx(0.5)
                or child.lr in (1e-3, 0.5)
            )
    neighbors = recipes.neighbors(BASE)
    assert len(neighbors) == len(set(neighbors))
    # lr x2 /2, wd x2 /2, 6 schedules, 1 optimizer, 1 wd flag, 3 momenta, 3 sizes, 2 smoothings
    assert len(neighbors) == 2 + 2 + 6 + 1 + 1 + 3 + 3 + 2
    assert dataclasses.replace(BASE, lr=0.2) in neighbors
    top = dataclasses.replace(BASE, lr=0.5)
    lr_moves = [n.lr for n in recipes.neighbors(top) if n.lr != top.lr]
    assert lr_moves == [0.25]  # at the top of the range only the step down is left


def test_recipe_build_is_a_type_error_and_bad_values_are_value_errors() -> None:
    with pytest.raises(TypeError, match="not a network"):
        recipes.build(BASE)
    params = recipes.to_params(BASE)
    with pytest.raises(ValueError, match=r"lr=5.0 is not in \[0.001, 0.5\]"):
        recipes.from_params({**params, "lr": 5.0})
    with pytest.raises(ValueError, match=r"schedule='cosin' is not one of \['constant'"):
        recipes.from_params({**params, "schedule": "cosin"})
    with pytest.raises(ValueError, match=r"optimizers: 'sgdm' is not one of \['sgd', 'adamw'\]"):
        RecipeSpace(optimizers=("sgdm",))
    with pytest.raises(ValueError, match=r"unknown key 'momentum'; allowed keys"):
        RecipeSpace.from_dict({"momentum": [0.9]})
    with pytest.raises(ValueError, match=r"lr must be \[low, high\]"):
        RecipeSpace(lr=(0.0, 1.0))
    with pytest.raises(ValueError, match="cannot read 'foo=1'"):
        recipes.from_str("foo=1")
    narrow = RecipeSpace.from_dict({"schedules": ["cosine"], "batch_size": [64]})
    assert narrow.sample(np.random.default_rng(0)).batch_size == 64


def test_joint_space_through_a_real_optuna_trial() -> None:
    joint = JointSpace(MacroSpace(), recipes)
    assert isinstance(joint, SearchSpace)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2)
    )
    for i in range(4):
        trial = study.ask()
        arch, recipe = joint.suggest(trial)
        assert isinstance(recipe, Recipe)
        assert set(trial.params) == set(joint.distributions())
        assert joint.from_params(trial.params) == (arch, recipe)
        assert "arch.s0.depth" in trial.params and "recipe.lr" in trial.params
        study.tell(trial, float(i))
    model = joint.build((arch, recipe), num_classes=3, in_channels=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    # a whole pair can be proposed by enqueueing its params
    pair = joint.sample(np.random.default_rng(0))
    study.enqueue_trial(joint.to_params(pair))
    assert joint.suggest(study.ask()) == pair


def test_joint_space_with_nb201_moves_and_strings() -> None:
    joint = JointSpace(NB201Space(), recipes)
    assert joint.name == "nb201+recipe"
    rng = np.random.default_rng(2)
    for _ in range(30):
        pair = joint.sample(rng)
        assert joint.from_params(joint.to_params(pair)) == pair
        assert joint.from_str(joint.to_str(pair)) == pair
        child = joint.mutate(pair, rng)
        assert (child[0] != pair[0]) != (child[1] != pair[1])  # exactly one part moved
    pair = (NB201Space().from_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), BASE)
    assert len(joint.neighbors(pair)) == 24 + len(recipes.neighbors(BASE))
    assert joint.canonical(pair) == pair
    assert joint.build(pair, C=4, N=1)(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="neither prefix"):
        joint.from_params({"lr": 0.1})
