"""The first stage's proposers: evolution and local search climb the stage's own judge where
random draws do not; every proposal is a new class; a resumed stage proposes what it judged
before; on the table, an evolved screen scores higher than a random one; bad names fail."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from tests.support import invoke

from normnas.bench.proxy_scores import ProxyScores
from normnas.bench.runs import Context
from normnas.bench.table import NB201Table
from normnas.errors import ConfigError
from normnas.judges.cascade import bench_plan, parse_cascade
from normnas.judges.combiner import Candidate
from normnas.judges.proposers import REFERENCE, Proposer
from normnas.judges.screening import ScreenJudge, run_screens, screened
from normnas.search.study import open_storage
from normnas.spaces.nb201 import NB201Space

SPACE = NB201Space()


def _convs(arch: tuple[str, ...]) -> float:
    """A judge with a known optimum: the number of 3x3 convolutions (6 at best)."""
    return float(sum(op == "nor_conv_3x3" for op in arch))


def _stage(name: str, seed: int, n: int = 150) -> list[float]:
    propose = Proposer(name, SPACE, np.random.default_rng(seed))
    judged: list[Candidate] = []
    while len(judged) < n:
        arch = propose.next(judged)
        assert arch is not None
        judged.append(Candidate(arch, SPACE.to_str(arch), {"convs": _convs(arch) + 1.0}))
    keys = [c.key for c in judged]
    assert len(set(keys)) == n  # never a class twice
    assert all(SPACE.to_str(SPACE.canonical(c.arch)) == c.key for c in judged)
    return [c.scores["convs"] - 1.0 for c in judged]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evolution_and_local_climb_the_judge_and_random_does_not(seed: int) -> None:
    rand, evo, local = (_stage(name, seed) for name in ("random", "evolution", "local"))
    assert rand[:REFERENCE] == evo[:REFERENCE] == local[:REFERENCE]  # one random start
    # evolution's late proposals score far above random draws (about 3 against 1.3 here)
    assert np.mean(evo[-50:]) > np.mean(rand[-50:]) + 0.7
    assert max(evo) >= 5
    assert max(local) == 6  # local search reaches the optimum: all six edges 3x3


def test_a_proposer_is_deterministic_given_its_seed_and_the_scores() -> None:
    assert _stage("evolution", 7, 60) == _stage("evolution", 7, 60)
    assert _stage("evolution", 7, 60) != _stage("evolution", 8, 60)


def test_an_unknown_proposer_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown 'magic'; valid: random, evolution, local"):
        Proposer("magic", SPACE, np.random.default_rng(0))


def test_a_resumed_evolved_stage_proposes_what_it_judged_and_judges_only_the_rest(
    tmp_path: Path,
) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    calls: list[str] = []

    def judge(name: str) -> ScreenJudge:
        def score(arch: object) -> dict[str, float]:
            calls.append(SPACE.to_str(arch))  # type: ignore[arg-type]
            return {"convs": _convs(arch) + 1.0}  # type: ignore[arg-type]

        return ScreenJudge(name, score)

    stages = parse_cascade("proxy:40,train")
    budget = iter([1.0] * 30 + [0.0] * 100)  # past the random start, then the time is up
    kw = {"seed": 3, "proposer": "evolution"}
    first = run_screens(study, SPACE, stages, judge, time_left=lambda: next(budget), **kw)  # type: ignore[arg-type]
    assert first.cut and len(first.pool) == 30
    calls.clear()
    second = run_screens(study, SPACE, stages, judge, **kw)  # type: ignore[arg-type]
    assert len(second.pool) == 40 and len(calls) == 10  # only the ten it had not judged
    assert [c.key for c in second.pool[:30]] == [c.key for c in first.pool]
    fresh = optuna.create_study(direction="maximize")
    calls.clear()
    whole = run_screens(fresh, SPACE, stages, judge, **kw)  # type: ignore[arg-type]
    assert [c.key for c in whole.pool] == [c.key for c in second.pool]  # as if never killed
    assert len(screened(study, SPACE)) == 40


def _zsum(scores: ProxyScores, keys: list[str], reference: list[str]) -> np.ndarray:
    """The z-sum of signed-log scores against `reference`, computed here with numpy alone."""
    out = np.zeros(len(keys))
    for name in scores.proxies:

        def slog(k: str, name: str = name) -> float:
            v = scores.scores[k][name]
            return math.copysign(math.log1p(abs(v)), v) if math.isfinite(v) else math.nan

        ref = np.array([slog(k) for k in reference])
        ref = ref[np.isfinite(ref)]
        vals = np.array([slog(k) for k in keys])
        z = (vals - ref.mean()) / ref.std()
        out += np.where(np.isfinite(z), z, -10.0)
    return out


def _pool(ctx: Context, proposer: str) -> tuple[list[str], float]:
    plan = bench_plan(parse_cascade("proxy:200,train"), proposer=proposer)
    sampler, charged = plan(ctx, seed=4)
    return [c.key for c in sampler.pool()], charged  # type: ignore[attr-defined]


def test_on_the_table_an_evolved_screen_scores_higher_and_is_charged_its_seconds() -> None:
    scores = ProxyScores.load(None, "synflow,jacov,naswot")
    ctx = Context(NB201Table.load(None), scores)
    rand, rand_s = _pool(ctx, "random")
    evo, evo_s = _pool(ctx, "evolution")
    for keys, charged in ((rand, rand_s), (evo, evo_s)):
        assert len(keys) == len(set(keys)) == 200
        assert charged == pytest.approx(sum(scores.cost_s[k] for k in keys))
    reference = evo[:REFERENCE]  # the evolved pool in proposal order: its random start
    assert np.mean(_zsum(scores, evo, reference)) > np.mean(_zsum(scores, rand, reference)) + 1


def test_the_proposer_is_named_in_the_search_and_refused_without_a_cascade(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.yaml").write_text(
        "space:\n  name: macro\n  options:\n    stages:\n"
        "      - {widths: [8, 16], min_blocks: 1, max_blocks: 2, stride: 1}\n"
        "    dropout: [0.0]\ntrain: {epochs: 1, batch_size: 64}\n"
    )
    args = ["search", "-c", "c.yaml", "--cascade", "proxy:24,train:2", "--proposer", "local"]
    args += ["--study", "p", "--no-progress", "--no-final"]
    got = invoke(args, tmp_path)
    assert got.exit_code == 0, got.output
    assert "cascade proxy:24,train:2 (first stage proposed by local): proxy 24" in got.output
    study = optuna.load_study(
        study_name="p", storage=open_storage(f"sqlite:///{tmp_path}/normnas.db")
    )
    assert study.user_attrs["cascade"]["proposer"] == "local"
    bad = invoke(["search", "-c", "c.yaml", "--proposer", "local", "--no-progress"], tmp_path)
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
    assert "--proposer local: proposes a cascade's first stage; give --cascade" in bad.output
    typo = invoke(["search", "-c", "c.yaml", "--cascade", "proxy:5,train", "--proposer", "evo"],
                  tmp_path)  # fmt: skip
    assert typo.exit_code == 2 and "unknown proposer 'evo'" in typo.output
    table = invoke(["bench", "nb201", "--strategy", "random", "--proposer", "local"], tmp_path)
    assert table.exit_code == 2 and "give --cascade" in table.output
