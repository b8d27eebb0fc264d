"""Zero-cost proxies on NAS-Bench-201 (CIFAR-10): how well each ranks cells, and its cost.

For a fixed random sample of canonical classes (seed 0; all 4,930 with --n 4930), builds
each cell's network as NAS-Bench-201 trains it (C=16, N=5, initialised with --seed), scores
it with every proxy on one fixed batch of real CIFAR-10 images (../shared/data/cifar10,
normalized per channel), and prints per proxy and per vote: Spearman rho and Kendall tau
against test_acc_200ep, the precision of its top 5% (share of its top 5% in the true top
5% of the sample) and CPU seconds per architecture. Scores go to --out as JSON lines as
they are computed; a rerun resumes where it stopped (and only reports with --report-only).

    .venv/bin/python benchmarks/proxies_nb201.py --n 1000 --out /tmp/proxies_nb201.jsonl

Files written with the same batch and seed can be reported together: `--report-only --merge
FILE...` joins their proxies class by class (the sample is the classes every named proxy
has scored).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from normnas.bench.table import NB201Table, TableEvaluator
from normnas.proxies.registry import BASELINES, PROXIES, ranks01, score_all, vote
from normnas.spaces.nb201 import NB201Space

CIFAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10" / "train-10k.npz"
VOTES = {  # fixed before measuring: the trio, and every non-baseline proxy
    "vote(synflow,jacov,naswot)": ("synflow", "jacov", "naswot"),
    "vote(synflow,jacov,naswot,meco)": ("synflow", "jacov", "naswot", "meco"),
    "vote(synflow,jacov,naswot,meco,swap_reg)": ("synflow", "jacov", "naswot", "meco", "swap_reg"),
    "vote(all 11)": tuple(p for p in PROXIES if p not in BASELINES),
}


def cifar_batch(path: Path, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` images drawn with `seed` from the 10k npz, normalized per channel."""
    data = np.load(path)
    x = torch.tensor(data["x"]).permute(0, 3, 1, 2).float() / 255.0
    mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:batch_size]
    return ((x[idx] - mean) / std).contiguous(), torch.tensor(data["y"])[idx].long()


def canonical_classes(space: NB201Space) -> list[str]:
    """Every canonical class once, in NAS-Bench-201 index order of its first cell."""
    out: dict[str, None] = {}
    for arch in space.all():
        out.setdefault(space.to_str(space.canonical(arch)), None)
    return list(out)


def read_done(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: score it again
                    continue
                if "arch" in row:
                    done[row["arch"]] = row
    return done


def score_archs(
    archs: list[str],
    names: tuple[str, ...],
    batch: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    out: Path,
) -> dict[str, dict]:
    """Score the archs not yet in `out`, appending one JSON line each; all rows."""
    space = NB201Space()
    done = read_done(out)
    todo = [a for a in archs if a not in done]
    print(f"{len(archs) - len(todo)} of {len(archs)} already scored in {out}", flush=True)
    t0 = time.perf_counter()
    with out.open("a") as f:
        for k, key in enumerate(todo, start=1):
            start = time.perf_counter()
            torch.manual_seed(seed)
            model = space.build(space.from_str(key))
            build_s = time.perf_counter() - start
            scores, seconds = score_all(model, batch, names, seed)
            row = {
                "arch": key,
                "scores": {n: (v if math.isfinite(v) else None) for n, v in scores.items()},
                "seconds": seconds,
                "build_s": build_s,
            }
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[key] = row
            if k % 25 == 0 or k == len(todo):
                rate = (time.perf_counter() - t0) / k
                print(f"  {k}/{len(todo)}  {rate:.2f} s/arch", flush=True)
    return done


def report(rows: list[dict], names: tuple[str, ...], table: NB201Table) -> None:
    space = NB201Space()
    ev = TableEvaluator(table, space)
    acc = np.array([table.test_acc_200ep[ev.resolve(space.from_str(r["arch"]))] for r in rows])
    n = len(rows)
    top = max(1, round(0.05 * n))
    true_top = set(np.argsort(-acc, kind="stable")[:top])

    def value(r: dict, name: str) -> float:
        v = r["scores"].get(name)
        return -math.inf if v is None else float(v)

    columns = {name: [value(r, name) for r in rows] for name in names}
    seconds = {name: float(np.mean([r["seconds"][name] for r in rows])) for name in names}
    lines = []
    for label, members in [(p, (p,)) for p in names] + list(VOTES.items()):
        if not all(m in columns for m in members):
            continue
        s = vote({m: columns[m] for m in members}) if len(members) > 1 else ranks01(columns[label])
        rho = spearmanr(s, acc).statistic
        tau = kendalltau(s, acc).statistic
        picked = set(np.argsort(-s, kind="stable")[:top])
        precision = len(picked & true_top) / top
        undefined = sum(not math.isfinite(columns[m][i]) for m in members for i in range(n))
        sec = sum(seconds[m] for m in members)
        lines.append((label, rho, tau, precision, sec, undefined))
    print(f"\nNAS-Bench-201 CIFAR-10: {n} canonical classes (of 4,930), vs test_acc_200ep; "
          f"top-5% = {top} archs")  # fmt: skip
    print("| proxy | Spearman rho | Kendall tau | top-5% precision | CPU s/arch | undefined |")
    print("|---|---|---|---|---|---|")
    for label, rho, tau, precision, sec, undefined in lines:
        print(f"| {label} | {rho:.3f} | {tau:.3f} | {precision:.2f} | {sec:.3f} | {undefined} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="canonical classes (4930: all)")
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="sample, batch and init seed")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--cifar", type=Path, default=CIFAR)
    ap.add_argument("--table", type=Path, default=None, help="NB201 CSV (default: packaged)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/proxies_nb201.jsonl"))
    ap.add_argument("--report-only", action="store_true", help="report what --out holds")
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="more score files of the same batch and seed (e.g. the warm-up scores of "
        "benchmarks/proxy_scores_nb201.py): their proxies join --out's, class by class",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = tuple(p.strip() for p in args.proxies.split(",") if p.strip())
    unknown = [p for p in names if p not in PROXIES]
    if unknown:
        sys.exit(f"error: --proxies: unknown {unknown}; valid: {', '.join(PROXIES)}")
    space = NB201Space()
    classes = canonical_classes(space)
    order = np.random.default_rng(args.seed).permutation(len(classes))
    sample = [classes[i] for i in order[: min(args.n, len(classes))]]
    print(f"batch {args.batch_size} real CIFAR-10 images (seed {args.seed}), "
          f"{torch.get_num_threads()} CPU thread(s), proxies: {', '.join(names)}")  # fmt: skip
    if args.report_only:
        done = read_done(args.out)
    else:
        batch = cifar_batch(args.cifar, args.batch_size, args.seed)
        done = score_archs(sample, names, batch, args.seed, args.out)
    for extra in args.merge:
        for arch, row in read_done(extra).items():
            mine = done.setdefault(arch, {"arch": arch, "scores": {}, "seconds": {}})
            mine["scores"] = {**row["scores"], **mine["scores"]}
            mine["seconds"] = {**row["seconds"], **mine["seconds"]}
    rows = [done[a] for a in sample if a in done and all(p in done[a]["scores"] for p in names)]
    report(rows, names, NB201Table.load(args.table))


if __name__ == "__main__":
    main()
