"""The registry and vote, ProxyEvaluator and the warm-up in real searches, the bench warm-up."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest

from normnas.bench.proxy_scores import FORMAT, ProxyScores
from normnas.bench.runs import Context, run_bench, search_once
from normnas.bench.table import NB201Table
from normnas.data import load
from normnas.errors import ConfigError, DataError
from normnas.proxies import (
    ProxyEvaluator,
    get_proxy,
    measures,
    parse_proxies,
    proxy_warmup,
    seed_count,
    seed_study,
    vote,
)
from normnas.proxies.evaluator import Z_FLOOR, distinct_sample
from normnas.proxies.registry import signed_log
from normnas.search.runner import Budget, run_search
from normnas.search.strategies import make_sampler
from normnas.spaces import MacroSpace, NB201Space

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACE = MacroSpace(  # tiny networks: a query is milliseconds on 8x8 digits
    stages=[{"widths": [4, 8], "min_blocks": 1, "max_blocks": 2, "stride": 1}],
    kernels=[1, 3],
    norms=["batchnorm", "none"],
    activations=["relu"],
    dropout=[0.0],
)


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load("digits")


def test_unknown_proxy_names_the_flag_and_the_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"--proxy: unknown proxy 'synflo'; valid: grad_norm"):
        get_proxy("synflo")
    assert parse_proxies(" synflow, jacov,synflow,") == ("synflow", "jacov")
    with pytest.raises(ConfigError, match="--proxy: expected one or more"):
        parse_proxies(" , ")


def test_vote_is_the_mean_of_ranks_scaled_to_unit_interval() -> None:
    # a: ranks 0, 1, 2 -> 0, .5, 1; b (ties, -inf lowest): -inf, 5, 5 -> 0, .75, .75
    v = vote({"a": [1.0, 2.0, 3.0], "b": [-math.inf, 5.0, 5.0]})
    assert v == pytest.approx([0.0, 0.625, 0.875])
    with pytest.raises(ValueError, match="same architectures"):
        vote({"a": [1.0], "b": [1.0, 2.0]})


def test_proxy_evaluator_search_scores_are_z_sums_against_the_reference(digits) -> None:  # type: ignore[no-untyped-def]
    ev = ProxyEvaluator(SPACE, digits, ("synflow", "naswot"), batch_size=16, reference_size=4)
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler("evolution", SPACE, seed=1, population_size=3)
    )
    summary = run_search(study, SPACE, ev, Budget(trials=5))
    assert summary.n_evaluated == 5 and summary.n_failed == 0
    # the reference by hand: the same random archs, scored, signed-log, mean and std
    ref = [ev.scores(a) for a in distinct_sample(SPACE, 4, np.random.default_rng([0, 1]))]
    stats = {}
    for name in ("synflow", "naswot"):
        v = np.array([signed_log(r[name]) for r in ref if math.isfinite(r[name])])
        stats[name] = (v.mean(), v.std())
    for trial in study.trials:
        arch = SPACE.from_params(trial.params)
        scores = ev.scores(arch)
        expected = sum(
            (signed_log(scores[n]) - m) / s if math.isfinite(scores[n]) else Z_FLOOR
            for n, (m, s) in stats.items()
        )
        assert trial.values[0] == pytest.approx(expected, rel=1e-9)
    first = ev.evaluate(SPACE.sample(np.random.default_rng(5)))
    assert first.extra["accuracy_is"] == "proxy_z_sum:synflow,naswot" and first.cost_s > 0


def test_the_evaluators_regularized_swap_aims_at_the_largest_network_of_the_space(digits) -> None:  # type: ignore[no-untyped-def]
    ev = ProxyEvaluator(SPACE, digits, ("swap", "swap_reg"), batch_size=16)
    prior = ev.size_prior()
    assert prior is not None
    # the prior's 64 networks, drawn again: the largest keeps its whole SWAP score
    rng = np.random.default_rng([0, 0x517E])
    archs = [SPACE.sample(rng) for _ in range(64)]
    sizes = [sum(p.numel() for p in ev.build(a).parameters()) for a in archs]
    assert prior.mu_k == pytest.approx(max(sizes) / 1e3)
    largest, smallest = archs[int(np.argmax(sizes))], archs[int(np.argmin(sizes))]
    big = ev.scores(largest)
    assert big["swap_reg"] == pytest.approx(big["swap"])
    small = ev.scores(smallest)
    assert small["swap"] > 0 and small["swap_reg"] < small["swap"]


def test_a_single_proxy_evaluator_reports_the_raw_score(digits) -> None:  # type: ignore[no-untyped-def]
    ev = ProxyEvaluator(SPACE, digits, "synflow", batch_size=8)
    arch = SPACE.sample(np.random.default_rng(3))
    result = ev.evaluate(arch)
    assert result.status == "ok" and result.extra["accuracy_is"] == "proxy:synflow"
    assert result.accuracy == measures.synflow(ev.build(arch), ev.batch)
    assert ev.scale is None  # no reference is scored for one proxy


def test_warmup_seeds_the_study_with_the_best_voted_archs_first(digits) -> None:  # type: ignore[no-untyped-def]
    picks = proxy_warmup(SPACE, digits, 8, ("synflow", "naswot"), seed=0, batch_size=16)
    assert len(picks) == 8 and len({SPACE.to_str(SPACE.canonical(p.arch)) for p in picks}) == 8
    votes = vote({n: [p.scores[n] for p in picks] for n in ("synflow", "naswot")})
    assert [p.score for p in picks] == pytest.approx(sorted(votes, reverse=True))
    sampler = make_sampler("evolution", SPACE, seed=0, population_size=3)
    assert seed_count(sampler) == 3
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seed_study(study, SPACE, picks, seed_count(sampler))
    ev = ProxyEvaluator(SPACE, digits, "params", batch_size=8)
    run_search(study, SPACE, ev, Budget(trials=5))
    firsts = [SPACE.from_params(t.params) for t in study.trials[:3]]
    assert firsts == [p.arch for p in picks[:3]]
    with pytest.raises(ConfigError, match="--proxy-warmup: expected an integer >= 1"):
        proxy_warmup(SPACE, digits, 0)


# -- the bench warm-up from a score file --------------------------------------------------------
def _score_file(path: Path) -> Path:
    """Every canonical class scored by a perfect proxy (12-epoch accuracy), 0.5 s a proxy."""
    space, table = NB201Space(), NB201Table.load()
    head = {"format": FORMAT, "proxies": ["oracle", "oracle_again"], "batch_size": 1, "seed": 0}
    rows, seen = [json.dumps(head)], set()
    for arch, acc in zip(table.archs, table.valid_acc_12ep, strict=True):
        key = space.to_str(space.canonical(arch))
        if key not in seen:
            seen.add(key)
            scores = {"oracle": float(acc), "oracle_again": float(acc)}
            seconds = {"oracle": 0.5, "oracle_again": 0.5}
            rows.append(
                json.dumps({"arch": key, "scores": scores, "seconds": seconds, "build_s": 0.0})
            )
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    return path


def test_bench_warmup_charges_its_seconds_and_starts_from_the_top(tmp_path: Path) -> None:
    scores = ProxyScores.load(_score_file(tmp_path / "s.jsonl.gz"))
    assert len(scores.scores) == 4930
    ctx = Context(NB201Table.load(), scores)
    study, _ = search_once(ctx, "evolution", 3, 3000.0, {}, proxy_warmup=100)
    assert study.user_attrs["proxy_warmup_s"] == pytest.approx(100.0)  # 100 cells x 2 x 0.5 s
    picks = scores.warmup(ctx.space, 100, np.random.default_rng([3, 0x5EED]))
    firsts = [ctx.space.from_params(t.params) for t in study.trials[:10]]
    assert firsts == [p.arch for p in picks[:10]]
    result = run_bench("evolution", 2, 3000.0, seed=3, proxy_warmup=100, proxy_scores=scores)
    assert result.mean_warmup_s == pytest.approx(100.0)
    assert all(o.spent_s >= 3000.0 and o.warmup_s == 100.0 for o in result.outcomes)
    assert result.summary()["proxy_warmup"] == 100


def test_a_score_file_votes_with_and_charges_only_the_chosen_proxies(tmp_path: Path) -> None:
    path = _score_file(tmp_path / "s.jsonl.gz")
    both = ProxyScores.load(path)  # none of the default proxies in it: all of its own
    assert both.proxies == ("oracle", "oracle_again")
    assert set(both.cost_s.values()) == {1.0}
    one = both.select(("oracle",))
    assert one.proxies == ("oracle",) and set(one.cost_s.values()) == {0.5}
    assert all(set(row) == {"oracle"} for row in one.scores.values())
    with pytest.raises(DataError, match=r"s\.jsonl\.gz: no scores for synflow; it has oracle"):
        ProxyScores.load(path, "synflow")


def test_bench_warmup_without_a_score_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.gz: cannot read the proxy scores"):
        run_bench("evolution", 1, 3000.0, proxy_warmup=10, proxy_scores=tmp_path / "missing.gz")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "other"}\n')
    with pytest.raises(DataError, match="first line must be a header"):
        ProxyScores.load(bad)
