"""Proxy scores of all 4,930 canonical NAS-Bench-201 classes, for `bench nb201 --proxy-warmup`.

Scores every class (NAS-Bench-201 index order of its first cell) with the warm-up proxies
on one fixed batch of real CIFAR-10 images, exactly as `benchmarks/proxies_nb201.py` does
(network C=16 N=5 initialised with --seed, batch drawn with --seed), appending one JSON
line per class to --out (a header line first); a rerun resumes where it stopped. --pack
then writes the shipped file, gzip JSON lines with a header stating the batch, seed,
proxies, thread count and total measured seconds.

    .venv/bin/python benchmarks/proxy_scores_nb201.py --out /tmp/nb201_proxies.jsonl
    .venv/bin/python benchmarks/proxy_scores_nb201.py --out /tmp/nb201_proxies.jsonl --pack
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxies_nb201 import CIFAR, canonical_classes, cifar_batch, read_done, score_archs

from normnas.bench.proxy_scores import DEFAULT_PROXY_FILE, FORMAT
from normnas.proxies.registry import DEFAULT_PROXIES, SIZED, SizePrior, parse_proxies
from normnas.spaces.nb201 import NB201Space

PACKAGED = Path(__file__).resolve().parents[1] / "src/normnas/bench/data" / DEFAULT_PROXY_FILE


def header(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {
        "format": FORMAT,
        "proxies": list(names),
        "batch_size": args.batch_size,
        "seed": args.seed,
        "data": "CIFAR-10 train-10k.npz (real images), per-channel normalized",
        "network": "NAS-Bench-201 TinyNetwork C=16 N=5, torch.manual_seed(seed) before build",
        "device": "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


def check_header(path: Path, expected: dict) -> None:
    """A resumed file must have been started with the same proxies, batch and seed."""
    if not path.exists() or not path.read_text().strip():
        path.write_text(json.dumps(expected) + "\n")
        return
    first = json.loads(path.read_text().splitlines()[0])
    for key in ("format", "proxies", "batch_size", "seed"):
        if first.get(key) != expected[key]:
            sys.exit(f"error: {path}: started with {key}={first.get(key)!r}, "
                     f"this run has {expected[key]!r}; use another --out")  # fmt: skip


def pack(sources: list[Path], dest: Path, allow_partial: bool) -> None:
    """Join the score files class by class into the shipped file.

    Each source was written by this script with its own proxies (the same batch and seed);
    with `swap` and `params` present, `swap_reg` is added: the paper's regularized SWAP with
    the size prior of all the classes (`SizePrior.of_sizes`: mu the largest, sigma the
    variance, in thousands of parameters), charged the seconds of `swap`.
    """
    heads = [json.loads(src.read_text().splitlines()[0]) for src in sources]
    for src, h in zip(sources[1:], heads[1:], strict=True):
        for key in ("batch_size", "seed"):
            if h.get(key) != heads[0].get(key):
                sys.exit(f"error: {src}: {key}={h.get(key)!r}, but {sources[0]} "
                         f"has {heads[0].get(key)!r}; files of one batch, seed only")  # fmt: skip
    names: list[str] = []
    for h in heads:
        names += [p for p in h["proxies"] if p not in names]
    merged: dict[str, dict] = {}  # shards of one proxy set, and files of other proxies, joined
    for src in sources:
        for a, row in read_done(src).items():
            into = merged.setdefault(a, {"arch": a, "scores": {}, "seconds": {},
                                         "build_s": row["build_s"]})  # fmt: skip
            into["scores"].update(row["scores"])
            into["seconds"].update(row["seconds"])
    classes = canonical_classes(NB201Space())
    missing = [a for a in classes if a not in merged or set(names) - set(merged[a]["scores"])]
    if missing and not allow_partial:
        sys.exit(f"error: {len(missing)} of {len(classes)} classes lack a score of "
                 f"{', '.join(names)} in {', '.join(map(str, sources))}; "
                 "rerun to resume (or --allow-partial)")  # fmt: skip
    skip = set(missing)
    ordered = [merged[a] for a in classes if a not in skip]
    head = dict(heads[0])
    if "swap" in names and "params" in names:
        prior = SizePrior.of_sizes([r["scores"]["params"] for r in ordered])
        for r in ordered:
            r["scores"]["swap_reg"] = prior.apply(r["scores"]["swap"], r["scores"]["params"])
            r["seconds"]["swap_reg"] = r["seconds"]["swap"]
        names.append("swap_reg")
        head["size_prior"] = {"mu_k": prior.mu_k, "sigma": prior.sigma,
                              "rule": "largest class and variance of all classes"}  # fmt: skip
    head["proxies"] = names
    head["classes"] = len(ordered)
    head["total_s"] = round(
        sum(r["build_s"] + sum(r["seconds"][p] for p in names) for r in ordered), 1
    )
    text = "\n".join(json.dumps(x) for x in [head, *ordered]) + "\n"
    dest.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"wrote {dest}: {len(ordered)} classes, proxies {', '.join(names)}, "
          f"{head['total_s']} s of proxy time")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    measured = [p for p in DEFAULT_PROXIES if p not in SIZED] + ["swap", "params"]
    ap.add_argument("--proxies", default=",".join(measured),
                    help="what to measure (--pack derives swap_reg)")  # fmt: skip
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cifar", type=Path, default=CIFAR)
    ap.add_argument("--out", type=Path, default=Path("/tmp/nb201_proxies.jsonl"))
    ap.add_argument("--limit", type=int, default=None, help="score only the first N (smoke)")
    ap.add_argument("--shard", default="0/1", help="K/N: score every N-th class from the K-th "
                    "(run N processes on one --out-K file each, then --pack them together)")
    ap.add_argument("--first", type=Path, default=None,
                    help="a JSON-lines file whose \"cell\" fields are scored first (e.g. "
                    "results/oneshot_nb201_cpu.jsonl: the 100-cell protocol)")  # fmt: skip
    ap.add_argument("--pack", action="store_true", help="write the shipped .jsonl.gz")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="with --pack: more score files (other proxies) joined to --out")
    ap.add_argument("--pack-to", type=Path, default=PACKAGED)
    ap.add_argument("--allow-partial", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = parse_proxies(args.proxies)
    if any(p in SIZED for p in names):
        sys.exit("error: --proxies: score swap and params; --pack derives swap_reg from them")
    if args.pack:
        pack([args.out, *args.merge], args.pack_to, args.allow_partial)
        return
    check_header(args.out, header(args, names))
    k, n = (int(v) for v in args.shard.split("/"))
    classes = canonical_classes(NB201Space())
    if args.first is not None:
        space = NB201Space()
        first = {
            space.to_str(space.canonical(space.from_str(json.loads(line)["cell"])))
            for line in args.first.read_text().splitlines()
            if '"cell"' in line
        }
        classes = [c for c in classes if c in first] + [c for c in classes if c not in first]
    classes = classes[: args.limit][k::n]
    batch = cifar_batch(args.cifar, args.batch_size, args.seed)
    score_archs(classes, names, batch, args.seed, args.out)


if __name__ == "__main__":
    main()
