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
from normnas.proxies.registry import DEFAULT_PROXIES, parse_proxies
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


def pack(src: Path, dest: Path, allow_partial: bool) -> None:
    lines = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    head, rows = lines[0], read_done(src)
    classes = canonical_classes(NB201Space())
    missing = [a for a in classes if a not in rows]
    if missing and not allow_partial:
        sys.exit(f"error: {src}: {len(missing)} of {len(classes)} classes not scored yet; "
                 "run again to resume (or --allow-partial)")  # fmt: skip
    ordered = [rows[a] for a in classes if a in rows]
    head = dict(head)
    head["classes"] = len(ordered)
    head["total_s"] = round(
        sum(r["build_s"] + sum(r["seconds"][p] for p in head["proxies"]) for r in ordered), 1
    )
    text = "\n".join(json.dumps(x) for x in [head, *ordered]) + "\n"
    dest.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"wrote {dest}: {len(ordered)} classes, {head['total_s']} s of proxy time")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxies", default=",".join(DEFAULT_PROXIES))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cifar", type=Path, default=CIFAR)
    ap.add_argument("--out", type=Path, default=Path("/tmp/nb201_proxies.jsonl"))
    ap.add_argument("--limit", type=int, default=None, help="score only the first N (smoke)")
    ap.add_argument("--pack", action="store_true", help="write the shipped .jsonl.gz")
    ap.add_argument("--pack-to", type=Path, default=PACKAGED)
    ap.add_argument("--allow-partial", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = parse_proxies(args.proxies)
    if args.pack:
        pack(args.out, args.pack_to, args.allow_partial)
        return
    check_header(args.out, header(args, names))
    classes = canonical_classes(NB201Space())[: args.limit]
    batch = cifar_batch(args.cifar, args.batch_size, args.seed)
    score_archs(classes, names, batch, args.seed, args.out)


if __name__ == "__main__":
    main()
