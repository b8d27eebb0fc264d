"""Every strategy on NAS-Bench-201 CIFAR-10 under the paper's protocol; prints BENCHMARKS.md rows.

    python benchmarks/nb201_strategies.py [--runs 500] [--budget 12000] [--processes 2]

Each row is what `normnas bench nb201 --strategy NAME --runs R --budget B --processes P`
prints; the `--no-dedup` rows re-charge equivalent cells, as the benchmark's scripts did.
"""

from __future__ import annotations

import argparse

from normnas.bench.runs import run_bench

PUBLISHED = {"random": "93.70 ± 0.36", "evolution": "93.92 ± 0.30"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--budget", type=float, default=12000.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--strategies", nargs="*", default=["random", "evolution", "local", "tpe", "additive"]
    )
    args = parser.parse_args()
    print(
        "| strategy | dedup | test acc of pick (%) | published | queries/run | wall s | command |"
    )
    print("|---|---|---|---|---|---|---|")
    cases = [(s, True) for s in args.strategies]
    cases += [(s, False) for s in ("random", "evolution") if s in args.strategies]
    for strategy, dedup in cases:
        r = run_bench(strategy, args.runs, args.budget, processes=args.processes, dedup=dedup)
        flag = "" if dedup else " --no-dedup"
        command = (
            f"`normnas bench nb201 --strategy {strategy} --runs {args.runs} "
            f"--budget {args.budget:g} --processes {args.processes}{flag}`"
        )
        published = PUBLISHED.get(strategy, "") if not dedup else ""
        print(
            f"| {strategy} | {'yes' if dedup else 'no'} | {r.mean_test_acc:.2f} ± "
            f"{r.std_test_acc:.2f} | {published} | {r.mean_queries:.1f} | {r.wall_s:.1f} | "
            f"{command} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
