"""The cascade of judges: its spec, the combiner against a known function, the last stage's
sampler on the NAS-Bench-201 table, and the bench's accounting of screened seconds."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from normnas.bench.proxy_scores import ProxyScores
from normnas.bench.runs import Context, run_bench
from normnas.bench.table import NB201Table
from normnas.errors import ConfigError
from normnas.judges.cascade import (
    STAGE_ATTR,
    BenchCascade,
    Stage,
    bench_plan,
    cascade_str,
    parse_cascade,
)
from normnas.judges.combiner import Candidate, Combiner
from normnas.spaces import NB201Space


def test_a_spec_lists_stages_cheapest_first_and_the_last_may_omit_its_count() -> None:
    stages = parse_cascade("proxy:2000, bn-indicator:200,train:20")
    assert stages == (Stage("proxy", 2000), Stage("bn-indicator", 200), Stage("train", 20))
    assert parse_cascade("proxy:1000,train")[-1] == Stage("train", None)
    assert cascade_str(parse_cascade("proxy:1000,train")) == "proxy:1000,train"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("train", "at least two stages"),
        ("proxy:10,,train", "at least two stages"),
        ("magic:10,train", "unknown judge 'magic'"),
        ("proxy,train", "needs a count"),
        ("proxy:ten,train", "integer count >= 1"),
        ("proxy:0,train", "integer count >= 1"),
        ("proxy:10,bn-indicator:20,train", "more candidates than the 10"),
    ],
)
def test_a_bad_spec_is_one_line_naming_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_cascade(spec)
    assert says in str(info.value) and "\n" not in str(info.value)


def _table_pool(n: int, seed: int) -> tuple[NB201Space, list[Candidate], dict[str, float]]:
    # the pool drawn and ordered by the three proxies these combiners are given
    ctx = Context(NB201Table.load(None), ProxyScores.load(None, "synflow,jacov,naswot"))
    picks = ctx.proxy_scores.warmup(ctx.space, n, np.random.default_rng(seed))  # type: ignore[union-attr]
    pool = [Candidate(p.arch, ctx.space.to_str(p.arch), dict(p.scores)) for p in picks]
    truth = {
        c.key: float(ctx.table.valid_acc_12ep[ctx.evaluator.resolve(c.arch)]) for c in pool
    }
    return ctx.space, pool, truth


def test_the_combiner_learns_a_cell_effect_the_vote_misses_and_earns_trust() -> None:
    space, pool, _ = _table_pool(300, 0)
    combiner = Combiner(space, ("synflow", "jacov", "naswot"))
    vote = combiner.vote(pool)
    # a known truth: the vote plus a strong effect of one op on one edge
    edge_op = [float(space.to_params(c.arch)["edge_1<-0"] == "nor_conv_3x3") for c in pool]
    truth = vote + 0.8 * np.asarray(edge_op)
    x = combiner.features(pool)
    assert combiner.earns_trust(x[:40], truth[:40])
    assert combiner.fit(x[:40], truth[:40])
    _, std = combiner.predict(x[40:])
    assert np.all(std > 0)
    # of the 30 one-hot columns, the effect put in weighs most
    onehot = combiner.model.coef_[len(combiner.score_names) + 1 :]
    column = combiner.encoder.columns.index(("edge_1<-0", "nor_conv_3x3"))
    assert int(np.argmax(onehot)) == column


def test_with_nothing_to_learn_the_combiner_stays_the_vote() -> None:
    space, pool, _ = _table_pool(300, 2)
    combiner = Combiner(space, ("synflow", "jacov", "naswot"))
    x = combiner.features(pool)
    noise = np.random.default_rng(0).normal(size=40)  # targets unrelated to anything
    assert not combiner.earns_trust(x[:40], noise)


def test_before_enough_results_the_vote_decides_then_thompson_explores() -> None:
    space, pool, truth = _table_pool(200, 1)
    combiner = Combiner(space, ("synflow", "jacov", "naswot"), min_points=8)
    votes = combiner.vote(pool)
    first = combiner.choose(pool, {}, np.random.default_rng(0))
    assert first == int(np.argmax(votes))
    judged = {c.key: truth[c.key] for c in pool[:20]}
    picks = {combiner.choose(pool, judged, np.random.default_rng(s)) for s in range(10)}
    assert all(p is not None and pool[p].key not in judged for p in picks)
    assert len(picks) > 1  # draws from the posterior differ: it keeps exploring
    greedy = {combiner.choose(pool, judged, np.random.default_rng(s), thompson=False)
              for s in range(3)}  # fmt: skip
    assert len(greedy) == 1


def test_the_last_stage_judges_only_what_the_screen_passed_and_records_its_scores() -> None:
    ctx = Context(NB201Table.load(None), ProxyScores.load())
    plan = bench_plan(parse_cascade("proxy:100,proxy:30,train"))
    sampler, charged = plan(ctx, seed=5)
    pool = {c.key for c in sampler.pool()}  # type: ignore[attr-defined]
    assert len(pool) == 30
    picks = ctx.proxy_scores.warmup(ctx.space, 100, np.random.default_rng([5, 0xCA5C]))  # type: ignore[union-attr]
    assert charged == pytest.approx(sum(p.cost_s for p in picks))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    from normnas.search.runner import Budget, run_search

    summary = run_search(study, ctx.space, ctx.evaluator, Budget(trials=40))
    keys = [t.user_attrs["key"] for t in study.trials if "key" in t.user_attrs]
    assert set(keys) <= pool and len(keys) == len(set(keys)) == 30
    assert summary.stopped_by == "cascade"  # no more than the screen passed
    t0 = study.trials[0]
    assert t0.user_attrs[STAGE_ATTR] == 2 and "x.synflow" in t0.user_attrs


def test_bench_charges_the_screened_seconds_and_reports_the_table_pick() -> None:
    result = run_bench(
        "cascade:proxy:200,train", runs=2, budget=1500,
        plan=BenchCascade(parse_cascade("proxy:200,train")),
    )  # fmt: skip
    ctx = Context(NB201Table.load(None))
    for o in result.outcomes:
        assert o.warmup_s > 0 and o.spent_s >= o.warmup_s
        row = ctx.evaluator.resolve(ctx.space.from_str(o.arch))
        assert row is not None
        assert o.test_acc_200ep == pytest.approx(float(ctx.table.test_acc_200ep[row]))
    assert result.mean_queries > 0


def test_bench_takes_a_cascade_from_the_command_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.support import invoke

    got = invoke(
        ["bench", "nb201", "--cascade", "proxy:100,train", "--runs", "2", "--budget", "1000",
         "--json"], tmp_path,
    )  # fmt: skip
    assert got.exit_code == 0, got.output
    out = json.loads(got.output)
    assert out["strategy"] == "cascade:proxy:100,train" and out["runs"] == 2
    bad = invoke(["bench", "nb201", "--cascade", "proxy:100,train", "-s", "random"], tmp_path)
    assert bad.exit_code == 2 and "replaces --strategy" in bad.output
    table = invoke(["bench", "nb201", "--cascade", "bn-indicator:10,train"], tmp_path)
    assert table.exit_code == 2 and "proxy stages, then train" in table.output
