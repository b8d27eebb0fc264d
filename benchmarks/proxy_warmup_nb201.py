"""Does a proxy warm-up let a search on NAS-Bench-201 reach in 3,000 s what needed 12,000 s?

    python benchmarks/proxy_warmup_nb201.py [--runs 500] [--warmups 0 100 500] [--proxy-scores F]

Runs `normnas bench nb201` for `evolution` and `additive` at budgets of 3,000 and 12,000
simulated seconds, without and with a proxy warm-up of N cells (the shipped scores of
every canonical class: synflow, jacov, naswot on real CIFAR-10 images; each warm-up
charges the measured seconds of the N cells it scored), and prints one markdown table:
mean ± std of the pick's test_acc_200ep over the runs, queries per run, and the warm-up's
mean charge. Nothing is tuned here: N is given, every other setting is the default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

NORMNAS = [sys.executable, "-m", "normnas.cli"]


def bench(strategy: str, budget: float, warmup: int, runs: int, scores: Path | None,
          processes: int) -> dict:  # fmt: skip
    cmd = [*NORMNAS, "bench", "nb201", "-s", strategy, "-r", str(runs), "-b", str(budget),
           "-p", str(processes), "--json"]  # fmt: skip
    if warmup:
        cmd += ["--proxy-warmup", str(warmup)]
        if scores is not None:
            cmd += ["--proxy-scores", str(scores)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)}: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--warmups", type=int, nargs="+", default=[0, 100, 500])
    ap.add_argument("--budgets", type=float, nargs="+", default=[3000.0, 12000.0])
    ap.add_argument("--strategies", nargs="+", default=["evolution", "additive"])
    ap.add_argument("--proxy-scores", type=Path, default=None, help="default: packaged")
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args(argv)
    print("| strategy | budget s | warm-up cells | test_acc_200ep of the pick | queries/run "
          "| warm-up charge s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for strategy in args.strategies:
        for budget in args.budgets:
            for warmup in args.warmups:
                r = bench(strategy, budget, warmup, args.runs, args.proxy_scores,
                          args.processes)  # fmt: skip
                charge = r.get("mean_warmup_s", 0.0) if warmup else 0.0
                print(f"| {strategy} | {budget:,.0f} | {warmup} | {r['mean_test_acc']:.2f} ± "
                      f"{r['std_test_acc']:.2f} | {r['mean_queries']:.1f} | {charge:.0f} |",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
