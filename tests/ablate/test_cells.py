"""What a design point trains: its architecture, its recipe, its regularizer."""

from __future__ import annotations

import pytest
import torch

from normnas.ablate.cells import (
    AblationSpace,
    Point,
    add_regularizer,
    default_arch,
    fitted_macro_space,
)
from normnas.ablate.design import Design, full_factorial
from normnas.ablate.factors import L1_STRENGTH, WEIGHT_DECAY, parse_factors


def space_of(names, levels=None):
    factors = parse_factors(names, levels)
    design = Design("full", factors, tuple(full_factorial(factors)), "test")
    arch = default_arch()
    return AblationSpace(design, [0, 1], fitted_macro_space(arch), arch)


def test_points_round_trip_and_run_seed_major():
    space = space_of(["norm", "batch_size"], {"norm": ["bn", "gn"], "batch_size": [8, 32]})
    assert [p.seed for p in space.points] == [0] * 4 + [1] * 4
    p = Point(("groupnorm", 8), 1)
    assert space.to_str(p) == "norm=groupnorm batch_size=8 seed=1"
    assert space.from_str(space.to_str(p)) == p
    assert space.from_params(space.to_params(p)) == p
    with pytest.raises(ValueError, match="seed=7"):
        space.from_params({"norm": "groupnorm", "batch_size": 8, "seed": 7})


def test_a_point_sets_every_block_and_its_recipe():
    space = space_of(["norm", "placement", "schedule", "regularizer"])
    p = Point(("groupnorm", "norm_act_conv", "onecycle", "dropout"), 1)
    arch = space.arch_of(p)
    blocks = [b for s in arch.stages for b in s]
    assert {(b.norm, b.placement) for b in blocks} == {("groupnorm", "norm_act_conv")}
    assert arch.dropout == 0.2
    changes, reg = space.settings(p)
    assert changes == {"seed": 1, "schedule": "onecycle", "weight_decay": 0.0}
    assert reg == "dropout"
    changes, _ = space.settings(Point(("batchnorm", "conv_norm_act", "cosine", "l2"), 0))
    assert changes["weight_decay"] == WEIGHT_DECAY
    assert space.arch_of(Point(("batchnorm", "conv_norm_act", "cosine", "l2"), 0)).dropout == 0.0


def test_without_a_norm_two_placements_are_one_run():
    space = space_of(["norm", "placement"], {"norm": ["bn", "none"]})
    twin = space.canonical(Point(("none", "conv_act_norm"), 0))
    assert twin == Point(("none", "conv_norm_act"), 0)
    assert space.canonical(Point(("batchnorm", "conv_act_norm"), 0)).cell[1] == "conv_act_norm"
    assert space.canonical(Point(("none", "norm_act_conv"), 0)).cell[1] == "norm_act_conv"


def test_l1_and_norm_only_decay_are_added_to_the_gradients():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
    add_regularizer(model, "l1")
    (0.0 * model(torch.randn(2, 2, 5, 5)).sum()).backward()
    w = model[0].weight
    assert torch.allclose(w.grad, L1_STRENGTH * w.detach().sign())
    assert torch.count_nonzero(model[1].weight.grad) == 0  # 1-d: no L1

    model.zero_grad()
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
    add_regularizer(model, "bn-only")
    (0.0 * model(torch.randn(2, 2, 5, 5)).sum()).backward()
    assert torch.allclose(model[1].weight.grad, WEIGHT_DECAY * model[1].weight.detach())
    assert torch.count_nonzero(model[0].weight.grad) == 0


def test_a_designed_run_is_never_pruned():
    from normnas.ablate.cells import AblationEvaluator
    from normnas.data import load
    from normnas.spaces import Block, MacroArch
    from normnas.train import TrainConfig

    factors = parse_factors(["norm"], {"norm": ["bn"]})
    design = Design("full", factors, tuple(full_factorial(factors)), "test")
    arch = MacroArch(((Block(8, 3, "batchnorm", "conv_norm_act", "relu", False),),), 0.0)
    space = AblationSpace(design, [0], fitted_macro_space(arch), arch)
    base = TrainConfig(epochs=2, batch_size=64)
    evaluator = AblationEvaluator(space, load("digits"), base, warm_up=False)
    calls = []

    def prune_now(step: int, value: float) -> bool:
        calls.append(step)
        return True

    result = evaluator.evaluate(space.points[0], None, prune_now)
    assert result.status == "ok" and result.extra["epochs"] == 2 and len(result.curve) == 2
    assert calls == []
    assert result.extra["epoch_s"] > 0


def test_a_canonical_twin_is_run_once_and_reported_for_both_cells():
    import optuna

    from normnas.ablate.cells import missing_points
    from normnas.ablate.run import observations

    levels = {"norm": ["bn", "none"], "placement": ["conv_norm_act", "conv_act_norm"]}
    space = space_of(["norm", "placement"], levels)
    study = optuna.create_study(direction="maximize")
    dists = space.distributions()
    runs = {("batchnorm", "conv_norm_act"): 0.9, ("batchnorm", "conv_act_norm"): 0.8,
            ("none", "conv_norm_act"): 0.7}  # fmt: skip
    for seed in (0, 1):
        for cell, acc in runs.items():
            params = space.to_params(Point(cell, seed))
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions=dists, value=acc,
                    user_attrs={"status": "ok", "accuracy": acc},
                )
            )  # fmt: skip
    assert missing_points(study, space) == []  # (none, conv_act_norm) is covered by its twin
    obs = {(o.cell["norm"], o.cell["placement"], o.seed): o.accuracy
           for o in observations(study, space)}  # fmt: skip
    assert len(obs) == 8
    assert obs[("none", "conv_act_norm", 1)] == 0.7


def test_arch_from_the_best_of_a_macro_search(tmp_path):
    import optuna

    from normnas.ablate.run import resolve_arch
    from normnas.errors import UserError
    from normnas.search.study import META_ATTR

    url = f"sqlite:///{tmp_path / 's.db'}"
    options = {"stages": [{"widths": [8, 12], "min_blocks": 1, "max_blocks": 1, "stride": 1},
                          {"widths": [16], "min_blocks": 1, "max_blocks": 2, "stride": 2}],
               "norms": ["groupnorm"], "placements": ["conv_act_norm"]}  # fmt: skip
    best = "[w12-k3-groupnorm-conv_act_norm-relu-res] [w16-k5-groupnorm-conv_act_norm-gelu-plain] "
    for name, space, archs in (("m", "macro", (0.5, 0.9)), ("n", "nb201", (0.7,))):
        study = optuna.create_study(study_name=name, storage=url, direction="maximize")
        study.set_user_attr(META_ATTR, {"config": {"space": {"name": space, "options": options}}})
        for i, acc in enumerate(archs):
            arch = best + f"dropout={0.2 if i else 0.0}"
            study.add_trial(optuna.trial.create_trial(
                value=acc, user_attrs={"status": "ok", "arch": arch}))  # fmt: skip
    space, arch = resolve_arch("study:m", url)
    assert space.to_str(arch) == best + "dropout=0.2"  # the best trial
    assert space.stages[1].stride == 2 and space.stages[1].max_blocks == 2  # its own space
    assert "batchnorm" in space.norms and "norm_act_conv" in space.placements  # every cell fits
    with pytest.raises(UserError, match="its space is 'nb201'"):
        resolve_arch("study:n", url)
