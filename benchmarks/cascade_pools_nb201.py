"""What each proposer puts in a cascade's screened pool on the NAS-Bench-201 CIFAR-10 table.

    .venv/bin/python benchmarks/cascade_pools_nb201.py [--pools 50] [--sizes 500,1000]
        [--proxies synflow,jacov,naswot]

For each proposer (random, evolution, local) and pool size N, over `--pools` seeds, the
pools `normnas bench nb201 --cascade proxy:N,train --proposer P` screens: the screening
seconds charged, the best `test_acc_200ep` in the pool, and the ceiling of promotion (the
`test_acc_200ep` of the pool's best `valid_acc_12ep` cell: what a perfect combiner would
pick with unlimited trainings). No search runs; the table is read only to report.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from normnas.bench.proxy_scores import ProxyScores
from normnas.bench.runs import Context
from normnas.bench.table import NB201Table
from normnas.judges.cascade import bench_plan, parse_cascade
from normnas.judges.proposers import PROPOSERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--sizes", default="500,1000")
    parser.add_argument("--proxies", default=None, help="the vote (default: the file's default)")
    args = parser.parse_args()
    table = NB201Table.load(None)
    scores = ProxyScores.load(None, args.proxies)
    ctx = Context(table, scores)
    print(f"proxies: {', '.join(scores.proxies)}; {args.pools} pools per row")
    print("| N | proposer | screening s | best test acc in the pool | ceiling of promotion |")
    print("|---|---|---|---|---|")
    for n in (int(x) for x in args.sizes.split(",")):
        for proposer in PROPOSERS:
            plan = bench_plan(parse_cascade(f"proxy:{n},train"), proposer=proposer)
            charged, best, ceiling = [], [], []
            t0 = time.perf_counter()
            for seed in range(args.pools):
                sampler, cost = plan(ctx, seed)
                rows = [ctx.evaluator.resolve(c.arch) for c in sampler.pool()]  # type: ignore[attr-defined]
                rows = [r for r in rows if r is not None]
                test = table.test_acc_200ep[rows]
                charged.append(cost)
                best.append(float(test.max()))
                ceiling.append(float(test[int(np.argmax(table.valid_acc_12ep[rows]))]))
            print(
                f"| {n} | {proposer} | {np.mean(charged):,.0f} | {np.mean(best):.2f} | "
                f"{np.mean(ceiling):.2f} ± {np.std(ceiling):.2f} |  "
                f"({time.perf_counter() - t0:.0f} s)"
            )


if __name__ == "__main__":
    main()
