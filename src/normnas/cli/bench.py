"""`normnas bench nb201`: score a strategy on a NAS-Bench-201 table. Heavy imports are lazy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer

from normnas.cli.errors import reported
from normnas.text import plural

bench_app = typer.Typer(
    help="Score strategies on tabular benchmarks (simulated time, seconds of real time).",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@bench_app.command("nb201")
@reported
def nb201(
    strategy: str | None = typer.Option(
        None, "--strategy", "-s", help="Strategy name (see `search`); or give --cascade."
    ),
    runs: int = typer.Option(500, "--runs", "-r", help="Independent seeded searches."),
    budget: float = typer.Option(
        12000.0, "--budget", "-b", help="Simulated training seconds per search."
    ),
    seed: int = typer.Option(0, "--seed", help="Run r uses seed + r."),
    table: Path | None = typer.Option(
        None, "--table", help="CSV(.gz) in the NB201 format (default: packaged CIFAR-10)."
    ),
    processes: int = typer.Option(1, "--processes", "-p", help="Worker processes over runs."),
    dedup: bool = typer.Option(
        True, "--dedup/--no-dedup", help="Charge equivalent cells once (default) or each time."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object only."),
    objective: list[str] | None = typer.Option(
        None,
        "--objective",
        help="accuracy (default); `--objective accuracy --objective latency`: two objectives, "
        "latency predicted by the packaged table (torch eager, 1 thread, batch 1).",
    ),
    latency_table: Path | None = typer.Option(
        None, "--latency-table", help="NB201 latency table for --objective latency."
    ),
    proxy_warmup: int = typer.Option(
        0,
        "--proxy-warmup",
        help="Score N random cells with the shipped proxy scores first, start from the best; "
        "their measured seconds are charged to the budget.",
    ),
    proxy_scores: Path | None = typer.Option(
        None,
        "--proxy-scores",
        help="Proxy score file for --proxy-warmup or --cascade (default: packaged).",
    ),
    proxies: str | None = typer.Option(
        None,
        "--proxies",
        help="Which of the file's proxies vote (and are charged), e.g. synflow,jacov,naswot "
        "[default: the default proxies the file has].",
    ),
    cascade: str | None = typer.Option(
        None,
        "--cascade",
        help="A cascade instead of a strategy: proxy:N[,proxy:M],train (the shipped proxy "
        "scores screen, the table trains; the screened cells' seconds are charged).",
    ),
    proposer: str = typer.Option(
        "random",
        "--proposer",
        help="Who proposes the cascade's screened cells: random, evolution or local "
        "(searching on the proxies' z-sum).",
    ),
) -> None:
    """Run R searches of a strategy on NAS-Bench-201; report the picks' test accuracy."""
    from normnas.bench.runs import run_bench
    from normnas.bench.table import NB201Table, TableError
    from normnas.search.strategies import STRATEGIES

    plan = None
    if cascade is not None:
        from normnas.errors import UserError
        from normnas.judges.cascade import bench_plan, parse_cascade

        if strategy is not None or proxy_warmup:
            _fail("--cascade: replaces --strategy and --proxy-warmup; give it alone")
        try:
            plan = bench_plan(parse_cascade(cascade), proposer=proposer)
        except UserError as exc:
            _fail(str(exc))
        strategy = f"cascade:{cascade}" + ("" if proposer == "random" else f"/{proposer}")
    elif proposer != "random":
        _fail(f"--proposer {proposer}: proposes a cascade's screened cells; give --cascade")
    elif strategy is None:
        _fail("give --strategy NAME or --cascade SPEC")
    elif strategy not in STRATEGIES:
        _fail(f"unknown strategy {strategy!r}; valid: {', '.join(sorted(STRATEGIES))}")
    assert strategy is not None
    objectives = tuple(objective or ("accuracy",))
    if objectives not in (("accuracy",), ("accuracy", "latency")):
        _fail(f"--objective: accuracy, or accuracy then latency; got {', '.join(objectives)}")
    if len(objectives) == 2:
        if plan is not None or proxy_warmup:
            _fail("--objective latency: runs a strategy alone (no --cascade, --proxy-warmup)")
        _pareto(strategy, runs, budget, seed, table, latency_table, dedup, as_json)
        return
    checks = (
        ("--runs", runs, 1),
        ("--processes", processes, 1),
        ("--proxy-warmup", proxy_warmup, 0),
    )
    for name, value, low in checks:
        if value < low:
            _fail(f"{name} must be >= {low}, got {value}")
    if not budget > 0:
        _fail(f"--budget must be > 0 simulated seconds, got {budget:g}")
    try:
        tab = NB201Table.load(table)
    except TableError as exc:
        _fail(str(exc))
    scores = None
    if proxy_warmup > 0 or plan is not None:
        from normnas.bench.proxy_scores import ProxyScores
        from normnas.errors import UserError

        try:
            scores = ProxyScores.load(proxy_scores, proxies)
        except UserError as exc:
            _fail(str(exc))
    try:
        result = run_bench(
            strategy,
            runs,
            budget,
            seed=seed,
            table=tab,
            processes=processes,
            dedup=dedup,
            proxy_warmup=proxy_warmup,
            proxy_scores=scores,
            plan=plan,
        )
    except ValueError as exc:  # a strategy that cannot run on this space, bad options
        _fail((str(exc).strip().splitlines() or [type(exc).__name__])[0])
    if as_json:
        typer.echo(json.dumps(result.summary()))
        return
    typer.echo(
        f"nb201 {strategy}: test accuracy of the pick {result.mean_test_acc:.2f} ± "
        f"{result.std_test_acc:.2f} % over {plural(runs, 'run')} "
        f"(seeds {seed}..{seed + runs - 1}), "
        f"budget {budget:g} s, {result.mean_queries:.1f} queries/run, "
        f"wall {result.wall_s:.1f} s  [{tab.path}]"
        + (" (a partial table: see the warning)" if result.warning else "")
        + (
            f", proxy warm-up {plural(proxy_warmup, 'cell')} ({', '.join(scores.proxies)}): "
            f"{result.mean_warmup_s:.1f} s charged per run"
            if scores is not None and plan is None
            else ""
        )
        + (
            f", proxy screening ({', '.join(scores.proxies)}): {result.mean_warmup_s:.1f} s "
            "charged per run"
            if scores is not None and plan is not None
            else ""
        )
    )


def _pareto(
    strategy: str, runs: int, budget: float, seed: int, table: Path | None,
    latency_table: Path | None, dedup: bool, as_json: bool,
) -> None:  # fmt: skip
    """Two objectives: the hypervolume share of each run's front (normnas.bench.pareto)."""
    from normnas.bench.pareto import run_pareto_bench

    result = run_pareto_bench(strategy, runs, budget, seed, table, latency_table, dedup=dedup)
    if as_json:
        typer.echo(json.dumps(result.summary()))
        return
    typer.echo(
        f"nb201 {strategy}, accuracy and latency: hypervolume {100 * result.mean_hv_share:.1f} "
        f"± {100 * result.std_hv_share:.1f} % of the true front's over "
        f"{plural(runs, 'run')} (seeds {seed}..{seed + runs - 1}), budget {budget:g} s, "
        f"{result.mean_queries:.1f} queries and {result.mean_front_size:.1f} front points/run, "
        f"wall {result.wall_s:.1f} s  [latency predicted from {result.latency_table}, not measured]"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
