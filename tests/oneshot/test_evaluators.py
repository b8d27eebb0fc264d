"""The supernet and BN-indicator judges as Evaluators, and prepare_supernet's checkpoint."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from normnas.data.split import DataBundle
from normnas.errors import ConfigError
from normnas.oneshot import (
    BNIndicatorEvaluator,
    NB201Supernet,
    SupernetEvaluator,
    SupernetOptions,
    bn_score,
    calibration_batches,
    evaluate_subnet,
    prepare_supernet,
)
from normnas.search.records import ATTR_STATUS
from normnas.search.runner import Budget, Constraints, run_search
from normnas.search.strategies import make_sampler
from normnas.spaces import NB201Space
from normnas.train import TrainConfig, count_ops, count_params

ARCH = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "none")


def test_supernet_evaluator_reports_the_subnets_accuracy(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    ev = SupernetEvaluator(supernet, data, "recalibrate", calib_batches=2, calib_batch_size=64)
    result = ev.evaluate(ARCH)
    batches = calibration_batches(data.train, 2, 64, seed=0)
    expected = evaluate_subnet(supernet, ARCH, data.valid, "recalibrate", batches)
    assert result.status == "ok" and result.accuracy == expected.accuracy
    assert result.extra["bn_mode"] == "recalibrate" and result.extra["calib_batches"] == 2
    assert result.cost_s > 0
    assert result.params == count_params(supernet.subnet(ARCH))


def test_cost_metrics_are_those_of_the_built_network(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    ev = SupernetEvaluator(supernet, data, "running")
    net = NB201Space().build(ARCH, 10, 1, C=4, N=1)
    ops = count_ops(net, (1, 8, 8))
    assert ev.cost_metrics(ARCH, ("params", "flops", "macs")) == {
        "params": count_params(net),
        "flops": ops.flops,
        "macs": ops.macs,
    }


def test_bn_indicator_evaluator_scores_under_accuracy(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    result = BNIndicatorEvaluator(supernet, data).evaluate(ARCH)
    assert result.accuracy == bn_score(supernet, ARCH)
    assert result.extra["accuracy_is"] == "bn_score"


def test_a_search_runs_on_the_supernet_judge_with_a_constraint(
    supernet: NB201Supernet, data: DataBundle
) -> None:
    space = NB201Space()
    ev = SupernetEvaluator(supernet, data, "batch")
    limit = count_params(space.build(("nor_conv_1x1",) * 6, 10, 1, C=4, N=1))
    sampler = make_sampler("random", space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    run_search(study, space, ev, Budget(trials=8), constraints=Constraints(max_params=limit))
    status = [t.user_attrs.get(ATTR_STATUS) for t in study.trials]
    assert "ok" in status and "infeasible" in status
    for t in study.trials:
        if t.user_attrs.get(ATTR_STATUS) != "ok":
            continue
        arch = space.from_params(t.params)
        expected = evaluate_subnet(supernet, arch, data.valid, "batch")
        assert t.values[0] == expected.accuracy
        assert count_params(space.build(arch, 10, 1, C=4, N=1)) <= limit


def test_prepare_supernet_reuses_its_finished_checkpoint(data: DataBundle, tmp_path: Path) -> None:
    config = TrainConfig(epochs=1, batch_size=64, seed=3)
    options = SupernetOptions(C=4, N=1)
    ckpt = tmp_path / "study.supernet.pt"
    first = prepare_supernet(NB201Space(), data, config, options, ckpt)
    mtime = ckpt.stat().st_mtime_ns
    again = prepare_supernet(NB201Space(), data, config, options, ckpt)
    assert ckpt.stat().st_mtime_ns == mtime
    for (k, v), w in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    ind = prepare_supernet(
        NB201Space(), data, config, SupernetOptions(judge="bn-indicator", C=4, N=1,
                                                    warmup_epochs=1, bn_epochs=1), ckpt
    )  # fmt: skip
    assert (tmp_path / "study.supernet.pt.bn").exists() and bn_score(ind, ARCH) > 0


def test_bad_options_are_config_errors(supernet: NB201Supernet, data: DataBundle) -> None:
    with pytest.raises(ConfigError, match="bn_mode: expected one of running, batch, recalibrate"):
        SupernetEvaluator(supernet, data, "exact")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="affine: the BN indicator needs affine=True"):
        SupernetOptions(judge="bn-indicator", affine=False)
    with pytest.raises(ConfigError, match="sampling: expected one of uniform, fair"):
        SupernetOptions(sampling="greedy")

    class Other:
        name = "recipe"

    with pytest.raises(ConfigError, match="no supernet for the 'recipe' space"):
        prepare_supernet(Other(), data, TrainConfig(epochs=1), SupernetOptions())  # type: ignore[arg-type]
