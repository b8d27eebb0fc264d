"""How well each judge ranks, alone and combined: the 100-cell protocol of the weight-sharing
benchmark (`benchmarks/oneshot_nb201.py --protocol cpu`, its results in
`benchmarks/results/oneshot_nb201_cpu.jsonl`), scored against NAS-Bench-201's
`test_acc_200ep`.

Judges on the 100 cells: the shipped zero-cost proxies (synflow, jacov, naswot: measured on
real CIFAR-10 images, `benchmarks/results/nb201_proxy_scores_cpu.jsonl`), their rank vote,
the parameter count, every supernet mode and the BN-scale indicator of that benchmark, and
short training: NAS-Bench-201's own 12-epoch validation accuracy (`valid_acc_12ep`, a
training of each cell on CIFAR-10 recorded in the table). The combiner
(`normnas.judges.combiner.Combiner`) is fitted on k cells judged by short training (its
target) with every cheap score and the one-hot cell as features, and scored on the other
100 - k cells; repeated over `--draws` random choices of the k cells (mean ± std).
"As used" applies the cascade's rule: the fitted model only where leave-one-out says it
ranks the fitted cells better than the vote, else the vote.

    .venv/bin/python benchmarks/cascade_judges_nb201.py [--draws 50]

Runs in seconds (no training: every score is recorded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from normnas.bench.proxy_scores import ProxyScores
from normnas.bench.table import NB201Table, TableEvaluator
from normnas.judges.combiner import Candidate, Combiner
from normnas.proxies.registry import DEFAULT_PROXIES, SizePrior, parse_proxies
from normnas.spaces import NB201Space

RESULTS = Path(__file__).parent / "results"
OLD_TRIO = ("synflow", "jacov", "naswot")  # the vote before MeCo and regularized SWAP
JUDGES = ("bn_indicator", "supernet")  # the weight-sharing benchmark's judges
SUPERNET = "supernet affine running"  # the best supernet mode over the 100 cells


def load() -> tuple[list[Candidate], dict[str, float], dict[str, float], dict[str, float]]:
    space = NB201Space()
    table = NB201Table.load(None)
    ev = TableEvaluator(table, space)
    proxies = ProxyScores.load(None, ProxyScores.load().header["proxies"])  # every column
    judged: dict[str, dict[str, float]] = {}
    anchors: dict[str, float] = {}
    for line in (RESULTS / "oneshot_nb201_cpu.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") != "judge":
            continue
        cell = row["cell"]
        if row["judge"] == "BN-scale indicator":
            judged.setdefault(cell, {})["bn_indicator"] = float(row["score"])
        elif row["judge"] == SUPERNET:
            judged.setdefault(cell, {})["supernet"] = float(row["score"])
        elif row["judge"].startswith("anchor"):
            anchors[cell] = float(row["score"])
    params = {}
    for line in (RESULTS / "nb201_params_flops_cpu.jsonl").read_text().splitlines():
        row = json.loads(line)
        params[row["arch"]] = float(row["scores"]["params"])
    # the regularized SWAP where the shipped file has none yet: SWAP counts of
    # `proxy_scores_nb201.py --proxies swap,params --first ...oneshot_nb201_cpu.jsonl`,
    # regularized with the size prior of all 4,930 classes, as --pack does
    swap: dict[str, float] = {}
    for path in sorted(RESULTS.glob("nb201_swap_cpu*.jsonl")):
        for line in path.read_text().splitlines()[1:]:
            row = json.loads(line)
            swap[row["arch"]] = float(row["scores"]["swap"])
    prior = SizePrior.of_sizes(list(params.values()))
    pool, short, test = [], {}, {}
    for cell, scores in sorted(judged.items()):
        arch = space.canonical(space.from_str(cell))
        key = space.to_str(arch)
        all_scores = dict(scores)
        all_scores.update(proxies.scores[key])
        all_scores["params"] = params[key]
        if "swap_reg" not in all_scores and key in swap:
            all_scores["swap"] = swap[key]
            all_scores["swap_reg"] = prior.apply(swap[key], params[key])
        pool.append(Candidate(arch, key, all_scores))
        r = ev.resolve(arch)
        short[key] = float(table.valid_acc_12ep[r])
        test[key] = float(table.test_acc_200ep[r])
    anchors = {space.to_str(space.canonical(space.from_str(c))): v for c, v in anchors.items()}
    return pool, short, test, anchors


def taus(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    return float(kendalltau(pred, target)[0]), float(spearmanr(pred, target)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument(
        "--proxies",
        default=",".join(DEFAULT_PROXIES),
        help="the vote and the combiner",
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    pool, short, test, anchors = load()
    voting = parse_proxies(args.proxies)
    cheap = (*voting, *JUDGES)
    shipped = tuple(p for p in pool[0].scores if p not in (*JUDGES, "params"))
    keys = [c.key for c in pool]
    y_test = np.array([test[k] for k in keys])
    print(f"{len(pool)} cells; judges against test_acc_200ep\n")
    print("| judge | cells | Kendall τ | Spearman ρ |")
    print("|---|---|---|---|")
    rows: list[tuple[str, np.ndarray]] = [
        (name, np.array([c.scores[name] for c in pool])) for name in (*shipped, *JUDGES, "params")
    ]
    space = NB201Space()
    rows += [
        ("vote of synflow, jacov, naswot", Combiner(space, OLD_TRIO).vote(pool)),
        (f"vote of {', '.join(voting)}", Combiner(space, voting).vote(pool)),
        (f"vote of all {len(cheap)} cheap judges", Combiner(space, cheap).vote(pool)),
    ]
    rows.append(("short training (valid_acc_12ep)", np.array([short[k] for k in keys])))
    for name, values in rows:
        t, r = taus(values, y_test)
        print(f"| {name} | {len(pool)} | {t:.3f} | {r:.3f} |")
    a_keys = [k for k in keys if k in anchors]
    t, r = taus(np.array([anchors[k] for k in a_keys]), np.array([test[k] for k in a_keys]))
    print(f"| anchor: cells trained alone 20 epochs | {len(a_keys)} | {t:.3f} | {r:.3f} |")
    print(f"\ncombiner on {', '.join(cheap)} + the one-hot cell, fitted on k cells judged by "
          "short training, scored on the other 100 - k")  # fmt: skip
    print("| k | fitted model τ | ρ | as used (trust rule) τ | vote on the same cells τ |")
    print("|---|---|---|---|---|")
    for k in (10, 20, 50):
        fit_t, fit_r, used_t, vote_t = [], [], [], []
        for d in range(args.draws):
            rng = np.random.default_rng([k, d])
            idx = rng.permutation(len(pool))
            train, held = idx[:k], idx[k:]
            comb = Combiner(space, cheap, min_points=min(8, k - 2))
            x = comb.features(pool)
            y = [short[keys[i]] for i in train]
            comb.fit(x[train], y)
            pred = comb.predict(x[held])[0]
            ft, fr = taus(pred, y_test[held])
            fit_t.append(ft)
            fit_r.append(fr)
            trusted = comb.earns_trust(x[train], y)
            comb.fit(x[train], y)
            used = pred if trusted else x[held, len(cheap)]
            used_t.append(taus(used, y_test[held])[0])
            vote_t.append(taus(x[held, len(cheap)], y_test[held])[0])
        print(
            f"| {k} | {np.mean(fit_t):.3f} ± {np.std(fit_t):.3f} | {np.mean(fit_r):.3f} | "
            f"{np.mean(used_t):.3f} ± {np.std(used_t):.3f} | {np.mean(vote_t):.3f} |"
        )
    ceiling(args.draws)
    print(f"\n({time.perf_counter() - t0:.1f}s)")


def ceiling(draws: int) -> None:
    """What `bench nb201 --cascade proxy:N,train` could reach at best: over `draws` pools of N
    screened cells, the test accuracy of the pool's best `valid_acc_12ep` (a perfect
    combiner, picking by the train judge's own answer) and the pool's best test accuracy."""
    from normnas.bench.runs import Context
    from normnas.judges.cascade import SCREEN_STREAM

    ctx = Context(NB201Table.load(None), ProxyScores.load())
    print("\nceiling of a cascade on the table (the pick is the best valid_acc_12ep)")
    print("| screened N | perfect combiner: test of the best 12-epoch cell | best test in pool |")
    print("|---|---|---|")
    for n in (200, 500, 1000):
        best12, best = [], []
        for seed in range(draws):
            rng = np.random.default_rng([seed, SCREEN_STREAM])
            picks = ctx.proxy_scores.warmup(ctx.space, n, rng)  # type: ignore[union-attr]
            rows = [ctx.evaluator.resolve(p.arch) for p in picks]
            v12 = np.array([ctx.table.valid_acc_12ep[r] for r in rows])
            te = np.array([ctx.table.test_acc_200ep[r] for r in rows])
            best12.append(te[int(np.argmax(v12))])
            best.append(te.max())
        print(f"| {n} | {np.mean(best12):.2f} | {np.mean(best):.2f} |")


if __name__ == "__main__":
    main()
