"""Few-shot supernets: a candidate is judged by the sub-supernet of its op on the split edge."""

from __future__ import annotations

import pytest
import torch

from normnas.config import parse_config
from normnas.errors import ConfigError
from normnas.oneshot import NB201Supernet, SupernetOptions, evaluate_subnet, prepare_supernet
from normnas.oneshot.few_shot import (
    FewShotSupernet,
    few_shot_epochs,
    split_supernet,
    sub_checkpoint,
    train_few_shot,
)
from normnas.spaces import MacroSpace, NB201Space
from normnas.spaces.nb201 import OPS
from normnas.train import TrainConfig

from .helpers import randomize_bn, small_digits

EDGE = 3  # 3<-0: the input straight to the output node


def _split() -> FewShotSupernet:
    torch.manual_seed(0)
    oneshot = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    randomize_bn(oneshot)
    return split_supernet(oneshot, EDGE)


def _archs() -> list[tuple[str, ...]]:
    """Two archs per op on the split edge (other edges varied)."""
    base = [
        ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", None, "avg_pool_3x3", "nor_conv_3x3"),
        ("skip_connect", "nor_conv_1x1", "none", None, "nor_conv_3x3", "skip_connect"),
    ]
    return [tuple(op if op is not None else on_edge for op in b) for on_edge in OPS for b in base]


def test_a_candidate_is_scored_by_the_sub_supernet_of_its_op() -> None:
    fewshot = _split().eval()
    x = small_digits().valid.x[:16]
    with torch.no_grad():
        before = {}
        for arch in _archs():
            fewshot.set_arch(arch)
            before[arch] = fewshot(x)
            # by hand: the stand-alone network built with that sub-supernet's weights
            reference = fewshot.subnets[arch[EDGE]].subnet(arch).eval()
            torch.testing.assert_close(before[arch], reference(x), rtol=0, atol=0)
        # perturb one sub-supernet: exactly the archs with its op on the edge change
        for p in fewshot.subnets["nor_conv_1x1"].parameters():
            p.add_(0.05 * torch.randn_like(p))
        for arch in _archs():
            fewshot.set_arch(arch)
            changed = not torch.equal(before[arch], fewshot(x))
            assert changed == (arch[EDGE] == "nor_conv_1x1"), arch


def test_bn_modes_run_on_the_owning_sub_supernet() -> None:
    """evaluate_subnet on the few-shot supernet equals it on the sub-supernet that owns the
    arch, for the recalibrated mode (which resets and restores every BN of the module)."""
    fewshot, data = _split(), small_digits()
    batches = [data.train.x[:32], data.train.x[32:64]]
    for arch in _archs()[::3]:
        owner = fewshot.subnets[arch[EDGE]]
        got = evaluate_subnet(fewshot, arch, data.valid, "recalibrate", batches)
        want = evaluate_subnet(owner, arch, data.valid, "recalibrate", batches)  # type: ignore[arg-type]
        assert got == want


def test_sub_supernets_train_only_their_op_on_the_split_edge(tmp_path) -> None:
    fewshot = _split()
    start = {
        op: {k: v.clone() for k, v in sub.state_dict().items()}
        for op, sub in fewshot.subnets.items()
    }
    config = TrainConfig(epochs=1, batch_size=64, lr=0.1, seed=0)
    results = train_few_shot(fewshot, small_digits(), config, checkpoint=tmp_path / "s.supernet.pt")
    assert [r.status for r in results.values()] == ["ok"] * len(OPS)
    for op, sub in fewshot.subnets.items():
        assert sub_checkpoint(tmp_path / "s.supernet.pt", EDGE, op).exists()
        for key, value in sub.state_dict().items():
            parts = key.split(".")
            if parts[0] == "cells" and parts[2] == "edges" and int(parts[3]) == EDGE:
                if key.endswith("num_batches_tracked"):
                    continue
                # the edge's other ops never run in this sub-supernet: untouched
                assert torch.equal(value, start[op][key]) == (parts[4] != op), (op, key)


def test_prepare_supernet_splits_at_equal_cost(tmp_path) -> None:
    assert few_shot_epochs(200, 0.5) == (100, 20)
    assert few_shot_epochs(10, 0.5) == (5, 1)
    with pytest.raises(ValueError, match="leave none for the one-shot"):
        few_shot_epochs(5, 0.9)
    ckpt = tmp_path / "study.supernet.pt"
    options = SupernetOptions(C=4, N=1, few_shot="3<-0")
    config = TrainConfig(epochs=6, batch_size=64, lr=0.1, seed=0)
    net = prepare_supernet(NB201Space(), small_digits(), config, options, ckpt)
    assert isinstance(net, FewShotSupernet) and net.edge == EDGE
    # one-shot 6 - 5*round(6*0.5/5)=1 epochs, then 5 sub-supernets of 1 epoch each
    from normnas.oneshot import load_checkpoint

    assert load_checkpoint(ckpt)["epochs"] == 1
    for op in OPS:
        assert load_checkpoint(sub_checkpoint(ckpt, EDGE, op))["epochs"] == 1


@pytest.mark.parametrize("edge", [6, -1, "4<-0", "x", "9"])
def test_bad_edge_is_one_line_naming_the_field(edge: object) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"space": "nb201", "evaluator": "supernet", "oneshot": {"few_shot": edge}})
    message = str(err.value)
    assert "\n" not in message and "few_shot" in message and "0-5" in message
    assert message.endswith(f"got {edge!r}")  # the value as given, quoted once
    with pytest.raises(ConfigError, match=r"^few_shot: expected an edge"):
        SupernetOptions(few_shot=edge)  # type: ignore[arg-type]


def test_few_shot_needs_the_nb201_supernet() -> None:
    with pytest.raises(ConfigError, match="few_shot: splitting is for the nb201"):
        prepare_supernet(
            MacroSpace(), small_digits(), TrainConfig(epochs=6), SupernetOptions(few_shot=0)
        )
    with pytest.raises(ConfigError, match="few_shot: only the supernet judge"):
        SupernetOptions(judge="bn-indicator", few_shot=0)
