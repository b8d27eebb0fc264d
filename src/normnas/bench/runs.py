"""R seeded searches on a NAS-Bench-201 table, each the very runner a real search uses.

Run r uses seed `seed + r`: a fresh in-memory Optuna study, `make_sampler(strategy, space,
seed + r)` and `run_search(..., Budget(cost_s=budget), dedup=dedup)` over a `TableEvaluator`.
The pick is the runner's best trial (best `valid_acc_12ep`, ties by first seen); only then is
its `test_acc_200ep` read from the table. With `proxy_warmup=N`, each run first draws N
random cells, ranks them by the shipped proxy scores (`ProxyScores`, their vote), enqueues
the best `seed_count(sampler)` (evolution's population, additive's start) and charges the
N cells' measured proxy seconds to its budget (`spent_s` includes them). Runs are
independent, so a process pool splits them into contiguous chunks and the results, sorted
by seed, do not depend on `processes`.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler

from normnas.bench.proxy_scores import ProxyScores
from normnas.bench.table import NB201Table, PartialTableWarning, TableEvaluator
from normnas.errors import ConfigError
from normnas.proxies.warmup import seed_count, seed_study
from normnas.search.runner import Budget, SearchSummary, run_search
from normnas.search.strategies import make_sampler
from normnas.spaces.nb201 import NB201Space


@dataclass(frozen=True)
class RunOutcome:
    """One search: its pick and what it spent."""

    seed: int
    arch: str
    valid_acc_12ep: float
    test_acc_200ep: float
    queries: int  # evaluations that cost budget (duplicates of equivalent cells excluded)
    spent_s: float  # simulated seconds, the budget-crossing query included (+ warm-up)
    warmup_s: float = 0.0  # measured proxy seconds of the warm-up, charged to the budget


@dataclass
class BenchResult:
    strategy: str
    runs: int
    budget: float
    mean_test_acc: float
    std_test_acc: float
    mean_queries: float
    wall_s: float
    outcomes: list[RunOutcome] = field(default_factory=list, repr=False)
    proxy_warmup: int = 0  # cells scored by proxies before each search (0: no warm-up)
    mean_warmup_s: float = 0.0  # their measured seconds, charged to each run's budget
    warning: str | None = None  # a partial table (NB201Table.coverage_warning), else None
    proxies: tuple[str, ...] = ()  # the proxies that voted (a warm-up or a cascade's screening)

    def summary(self) -> dict[str, Any]:
        """The JSON object of `normnas bench nb201 --json`."""
        keys = ("strategy", "runs", "budget", "mean_test_acc", "std_test_acc")
        out = {k: getattr(self, k) for k in keys}
        out["mean_queries"] = self.mean_queries
        out["wall_s"] = round(self.wall_s, 3)
        if self.proxy_warmup:
            out["proxy_warmup"] = self.proxy_warmup
        if self.proxies:  # a warm-up or a cascade: what voted, and the seconds charged for it
            out["proxies"] = list(self.proxies)
            out["mean_warmup_s"] = self.mean_warmup_s
        if self.warning:
            out["warning"] = self.warning
        return out

    def outcomes_dicts(self) -> list[dict[str, Any]]:
        return [asdict(o) for o in self.outcomes]


class Context:
    """What every run in a process shares: the table, its evaluator, one space object."""

    def __init__(self, table: NB201Table, proxy_scores: ProxyScores | None = None) -> None:
        self.table = table
        self.proxy_scores = proxy_scores
        self.space = NB201Space()
        self.evaluator = TableEvaluator(table, self.space)


WARMUP_STREAM = 0x5EED  # the warm-up's draws: a stream of their own beside the sampler's
WARMUP_S_ATTR = "proxy_warmup_s"
_CONTEXT: Context | None = None  # per worker process (set by the pool initializer)
# a run's set-up given from above (a cascade): (context, seed) -> (sampler, charged seconds)
Plan = Callable[[Context, int], tuple[BaseSampler, float]]


def search_once(
    ctx: Context,
    strategy: str,
    seed: int,
    budget: float,
    options: dict[str, Any],
    dedup: bool = True,
    proxy_warmup: int = 0,
    plan: Plan | None = None,
) -> tuple[optuna.Study, SearchSummary]:
    """One search: a fresh in-memory study driven by the standard runner.

    `plan(ctx, seed) -> (sampler, charged_s)` replaces the strategy (a cascade of judges,
    given from above: `normnas.judges.cascade.bench_plan`); its charged seconds count as
    the warm-up's do.

    With `proxy_warmup` > 0 the study's user attr `proxy_warmup_s` holds the warm-up's
    charged seconds (the runner's budget is what is left of `budget` after them; at least
    one query is always made).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    left = budget
    if plan is not None:  # a cascade: its screening is charged, its last stage samples
        sampler, screened_s = plan(ctx, seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.set_user_attr(WARMUP_S_ATTR, screened_s)
        left = max(budget - screened_s, 1e-9)
        summary = run_search(study, ctx.space, ctx.evaluator, Budget(cost_s=left), dedup=dedup)
        return study, summary
    sampler = make_sampler(strategy, ctx.space, seed=seed, **options)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    if proxy_warmup > 0:
        if ctx.proxy_scores is None:
            raise ConfigError("--proxy-warmup: no proxy scores loaded")
        rng = np.random.default_rng([seed, WARMUP_STREAM])
        picks = ctx.proxy_scores.warmup(ctx.space, proxy_warmup, rng)
        seed_study(study, ctx.space, picks, seed_count(sampler))
        warm_s = float(sum(p.cost_s for p in picks))
        study.set_user_attr(WARMUP_S_ATTR, warm_s)
        left = max(budget - warm_s, 1e-9)  # > 0: the query crossing the budget still runs
    summary = run_search(study, ctx.space, ctx.evaluator, Budget(cost_s=left), dedup=dedup)
    return study, summary


def run_once(
    ctx: Context,
    strategy: str,
    seed: int,
    budget: float,
    options: dict[str, Any],
    dedup: bool = True,
    proxy_warmup: int = 0,
    plan: Plan | None = None,
) -> RunOutcome:
    study, summary = search_once(
        ctx, strategy, seed, budget, options, dedup, proxy_warmup, plan
    )
    warm_s = float(study.user_attrs.get(WARMUP_S_ATTR, 0.0))
    best = summary.best  # best valid_acc_12ep, ties by the lower trial number
    if best is None or best.arch is None:
        raise RuntimeError(f"run with seed {seed}: the search evaluated no architecture")
    row = ctx.evaluator.resolve(ctx.space.from_str(best.arch))
    assert row is not None  # the runner only records archs the evaluator answered
    return RunOutcome(
        seed=seed,
        arch=best.arch,
        valid_acc_12ep=float(ctx.table.valid_acc_12ep[row]),
        test_acc_200ep=float(ctx.table.test_acc_200ep[row]),
        queries=summary.n_evaluated - summary.n_failed,
        spent_s=summary.spent_cost_s + warm_s,
        warmup_s=warm_s,
    )


def _init_worker(
    table: NB201Table | None, path: str | None, proxy_scores: ProxyScores | None = None
) -> None:
    global _CONTEXT
    _CONTEXT = Context(table if table is not None else NB201Table.load(path), proxy_scores)


def _run_chunk(
    strategy: str,
    seeds: list[int],
    budget: float,
    options: dict[str, Any],
    dedup: bool,
    proxy_warmup: int = 0,
    plan: Plan | None = None,
) -> list[RunOutcome]:
    assert _CONTEXT is not None
    return [
        run_once(_CONTEXT, strategy, s, budget, options, dedup, proxy_warmup, plan)
        for s in seeds
    ]


def run_bench(
    strategy: str,
    runs: int,
    budget: float,
    seed: int = 0,
    table: NB201Table | str | Path | None = None,
    processes: int = 1,
    options: dict[str, Any] | None = None,
    dedup: bool = True,
    proxy_warmup: int = 0,
    proxy_scores: ProxyScores | str | Path | None = None,
    plan: Plan | None = None,
) -> BenchResult:
    """Run `runs` seeded searches of `strategy` under `budget` simulated seconds each.

    `dedup=False` re-queries (and re-charges) equivalent cells, as the benchmark paper's
    own scripts did; the default charges a canonical class once. `proxy_warmup=N` warms
    each run up on N cells scored by `proxy_scores` (a file; None: the packaged one).
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if not budget > 0:
        raise ValueError(f"budget must be > 0 simulated seconds, got {budget}")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if isinstance(proxy_warmup, bool) or not isinstance(proxy_warmup, int) or proxy_warmup < 0:
        raise ConfigError(f"--proxy-warmup: expected an integer >= 0, got {proxy_warmup!r}")
    scores = None
    if proxy_warmup > 0 or plan is not None:
        scores = (
            proxy_scores
            if isinstance(proxy_scores, ProxyScores)
            else ProxyScores.load(proxy_scores)
        )
    options = dict(options or {})
    if plan is None:  # unknown name/option: fail now
        make_sampler(strategy, NB201Space(), seed=seed, **options)
    t0 = time.perf_counter()
    tab = table if isinstance(table, NB201Table) else NB201Table.load(table)
    partial = tab.coverage_warning()
    if partial:  # say so before the runs, and keep it in the result (its JSON, its report)
        warnings.warn(partial, PartialTableWarning, stacklevel=2)
    seeds = [seed + r for r in range(runs)]
    processes = min(processes, runs)
    if processes == 1:
        ctx = Context(tab, scores)
        outcomes = [
            run_once(ctx, strategy, s, budget, options, dedup, proxy_warmup, plan) for s in seeds
        ]
    else:
        size = math.ceil(runs / processes)
        chunks = [seeds[i : i + size] for i in range(0, runs, size)]
        # fork shares the loaded table; elsewhere each worker gets it pickled
        method = "fork" if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(
            max_workers=len(chunks),
            mp_context=mp.get_context(method),
            initializer=_init_worker,
            initargs=(tab, None, scores),
        ) as pool:
            futures = [
                pool.submit(_run_chunk, strategy, c, budget, options, dedup, proxy_warmup, plan)
                for c in chunks
            ]
            outcomes = [o for f in futures for o in f.result()]
    outcomes.sort(key=lambda o: o.seed)
    tests = np.array([o.test_acc_200ep for o in outcomes])
    return BenchResult(
        strategy=strategy,
        runs=runs,
        budget=float(budget),
        mean_test_acc=round(float(tests.mean()), 4),
        std_test_acc=round(float(tests.std()), 4),
        mean_queries=round(float(np.mean([o.queries for o in outcomes])), 2),
        wall_s=time.perf_counter() - t0,
        outcomes=outcomes,
        proxy_warmup=proxy_warmup,
        mean_warmup_s=round(float(np.mean([o.warmup_s for o in outcomes])), 3),
        warning=partial,
        proxies=tuple(scores.proxies) if scores is not None else (),
    )
