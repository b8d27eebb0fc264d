"""What BN does to weight-sharing NAS on NAS-Bench-201, measured on real CIFAR-10 images.

    python benchmarks/oneshot_nb201.py [--protocol cpu|large|smoke] [--gpu] [--out FILE]

Trains NB201 supernets (SPOS uniform sampling; BN affine on and off) and a BN-NAS
indicator supernet on the 10,000 real CIFAR-10 images of ../shared/data/cifar10/
(fixed stratified split: 80% train, 20% valid, seed 0), ranks a fixed list of cells
(evenly spaced in accuracy rank over the table's canonical cells) by every judge and
prints, per judge: Kendall tau and Spearman rho against the table's `test_acc_200ep`,
top-10 precision (share of the list's 10 best cells in the judge's top 10), the time to
judge all cells and the training it needed, beside the anchor: a subset of the cells each
trained alone with the same recipe and epochs (its cost scaled to all cells).

Every result is appended to a JSON-lines file as it comes (`--out`); a rerun reads it and
resumes where it stopped (supernet trainings resume from their per-epoch checkpoints).
`--smoke` is a minutes-long run of the whole pipeline on a tiny protocol.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau, spearmanr

from normnas.bench.table import NB201Table
from normnas.data.common import channel_stats, stratified_split
from normnas.data.split import DataBundle, Split
from normnas.oneshot import (
    NB201Supernet,
    bn_score,
    calibration_batches,
    evaluate_subnet,
    train_bn_indicator,
    train_supernet,
)
from normnas.spaces import NB201Space
from normnas.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train-10k.npz"

PROTOCOLS: dict[str, dict[str, Any]] = {
    # ~2 h on 2 CPU cores: 16x16 images (2x2 mean-pooled), a 1-cell-per-stage network
    "cpu": dict(
        image_size=16, C=16, N=1, epochs=20, batch_size=128, lr=0.1, cells=100, anchors=30,
        warmup_epochs=5, bn_epochs=15, calib=(1, 4, 16), n_train=None, device="cpu",
    ),
    # the benchmark's network and image size, for a GPU
    "large": dict(
        image_size=32, C=16, N=5, epochs=50, batch_size=256, lr=0.1, cells=100, anchors=30,
        warmup_epochs=10, bn_epochs=40, calib=(1, 4, 16), n_train=None, device="cuda",
    ),
    "smoke": dict(
        image_size=16, C=4, N=1, epochs=1, batch_size=64, lr=0.1, cells=12, anchors=4,
        warmup_epochs=1, bn_epochs=1, calib=(1, 4), n_train=640, device="cpu",
    ),
}  # fmt: skip
CALIB_BATCH_SIZE = 128


def load_cifar(
    path: Path, image_size: int, n_train: int | None, valid_fraction: float = 0.2
) -> DataBundle:
    """The fixed split of the 10k real images: 80% train (augmented), 20% valid (or
    `valid_fraction`)."""
    raw = np.load(path)
    x = torch.from_numpy(raw["x"]).permute(0, 3, 1, 2).float() / 255.0
    if image_size != x.shape[-1]:
        x = F.adaptive_avg_pool2d(x, image_size)
    y = raw["y"].astype(np.int64)
    train_idx, valid_idx = stratified_split(y, valid_fraction, seed=0)
    if n_train is not None:  # smoke: a prefix of each split
        train_idx, valid_idx = train_idx[:n_train], valid_idx[: n_train // 2]
    mean, std = channel_stats(x[train_idx])
    m = torch.tensor(mean)[None, :, None, None]
    s = torch.tensor(std)[None, :, None, None]
    x = (x - m) / s
    yt = torch.from_numpy(y)
    pad = max(1, image_size // 8)
    train = Split(x[train_idx], yt[train_idx], augment=True, padding=pad)
    valid = Split(x[valid_idx], yt[valid_idx])
    return DataBundle(
        "cifar10-10k", train, valid, valid, 10, 3, (image_size, image_size), mean, std
    )


def cell_list(table: NB201Table, count: int) -> list[tuple[str, ...]]:
    """`count` canonical cells evenly spaced in test_acc_200ep rank (best first)."""
    space = NB201Space()
    seen: dict[tuple[str, ...], int] = {}
    for row, arch in enumerate(table.archs):
        seen.setdefault(space.canonical(arch), table.rows.get(space.canonical(arch), row))
    rows = sorted(seen.values(), key=lambda r: -table.test_acc_200ep[r])
    picks = np.unique(np.linspace(0, len(rows) - 1, count).round().astype(int))
    return [table.archs[rows[i]] for i in picks]


class Log:
    """Append-only JSON lines; `done(key)` says whether a record with that key exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    try:
                        self.records.append(json.loads(line))
                    except json.JSONDecodeError:
                        break  # a line cut by a kill: everything before it counts
        self.keys = {r["key"] for r in self.records}

    def done(self, key: str) -> bool:
        return key in self.keys

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.keys.add(record["key"])
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()

    def get(self, key: str) -> dict[str, Any]:
        return next(r for r in self.records if r["key"] == key)


def train_config(p: dict[str, Any], epochs: int | None = None) -> TrainConfig:
    return TrainConfig(
        epochs=epochs or p["epochs"], batch_size=p["batch_size"], lr=p["lr"], seed=0,
        device=p["device"], schedule="cosine", weight_decay=5e-4,
        channels_last=p["device"] == "cuda",
    )  # fmt: skip


def trained_supernet(
    p: dict[str, Any], data: DataBundle, log: Log, work: Path, variant: str
) -> NB201Supernet:
    """Train (or resume, or load) one supernet: 'affine', 'noaffine' or 'indicator'."""
    torch.manual_seed(0)
    net = NB201Supernet(NB201Space(), 10, 3, C=p["C"], N=p["N"], affine=variant != "noaffine")
    ckpt = work / f"supernet-{variant}.pt"
    config = train_config(p)
    start = time.perf_counter()
    if variant == "indicator":
        _, result = train_bn_indicator(
            net, data, p["warmup_epochs"], p["bn_epochs"], config, checkpoint=ckpt
        )
        epochs = p["warmup_epochs"] + p["bn_epochs"]
    else:
        result = train_supernet(net, data, config, "uniform", ckpt)
        epochs = p["epochs"]
    key = f"train/{variant}"
    if not log.done(key):
        # result.time_s counts the epochs of this phase across resumes; the warm-up of
        # the indicator is read from its own checkpoint
        time_s = result.time_s
        if variant == "indicator" and p["warmup_epochs"]:
            time_s += float(torch.load(str(ckpt) + ".warmup", weights_only=True)["time_s"])
        last = result.history[-1].train_loss if result.history else None
        log.add({"key": key, "kind": "train", "variant": variant, "epochs": epochs,
                 "time_s": time_s, "status": result.status, "final_train_loss": last})  # fmt: skip
        print(f"trained {variant}: {time_s:.0f} s ({time.perf_counter() - start:.0f} s now)")
    return net.to(p["device"])


def judge_supernet(
    p: dict[str, Any],
    data: DataBundle,
    log: Log,
    net: NB201Supernet,
    variant: str,
    cells: list[tuple[str, ...]],
) -> None:
    space = NB201Space()
    modes: list[tuple[str, str, int]] = [("running", "running", 0), ("batch", "batch", 0)]
    modes += [(f"recalibrate-{n}", "recalibrate", n) for n in p["calib"]]
    for name, mode, n in modes:
        batches = (
            calibration_batches(data.train, n, CALIB_BATCH_SIZE, 0, p["device"]) if n else None
        )
        for arch in cells:
            key = f"judge/{variant}/{name}/{space.to_str(arch)}"
            if log.done(key):
                continue
            start = time.perf_counter()
            score = evaluate_subnet(net, arch, data.valid, mode, batches or 1)  # type: ignore[arg-type]
            log.add({"key": key, "kind": "judge", "judge": f"supernet {variant} {name}",
                     "cell": space.to_str(arch), "score": score.accuracy,
                     "time_s": time.perf_counter() - start})  # fmt: skip


def judge_indicator(log: Log, net: NB201Supernet, cells: list[tuple[str, ...]]) -> None:
    space = NB201Space()
    for arch in cells:
        key = f"judge/indicator/{space.to_str(arch)}"
        if log.done(key):
            continue
        start = time.perf_counter()
        score = bn_score(net, arch)
        log.add({"key": key, "kind": "judge", "judge": "BN-scale indicator",
                 "cell": space.to_str(arch), "score": score,
                 "time_s": time.perf_counter() - start})  # fmt: skip


def train_anchors(
    p: dict[str, Any], data: DataBundle, log: Log, cells: list[tuple[str, ...]]
) -> list[tuple[str, ...]]:
    """Every (len/anchors)-th cell of the list, trained alone with the supernet's recipe."""
    space = NB201Space()
    picks = np.unique(np.linspace(0, len(cells) - 1, p["anchors"]).round().astype(int))
    anchors = [cells[i] for i in picks]
    for arch in anchors:
        key = f"anchor/{space.to_str(arch)}"
        if log.done(key):
            continue
        torch.manual_seed(0)
        model = space.build(arch, 10, 3, C=p["C"], N=p["N"])
        start = time.perf_counter()
        result = fit(model, data, train_config(p))
        log.add({"key": key, "kind": "judge", "judge": "anchor: trained alone",
                 "cell": space.to_str(arch), "score": result.final_valid_acc,
                 "time_s": time.perf_counter() - start})  # fmt: skip
        print(f"anchor {space.to_str(arch)}: {result.final_valid_acc:.3f}")
    return anchors


def precision_at(truth: np.ndarray, score: np.ndarray, k: int = 10) -> float:
    k = min(k, len(truth))
    best = set(np.argsort(-truth, kind="stable")[:k])
    return len(best & set(np.argsort(-score, kind="stable")[:k])) / k


def table_rows(log: Log, table: NB201Table, n_cells: int) -> list[str]:
    space = NB201Space()
    judges: dict[str, list[dict[str, Any]]] = {}
    for r in log.records:
        if r["kind"] == "judge":
            judges.setdefault(r["judge"], []).append(r)
    train_s = {r["variant"]: r["time_s"] for r in log.records if r["kind"] == "train"}
    anchor = judges.get("anchor: trained alone", [])
    anchor_all = np.mean([r["time_s"] for r in anchor]) * n_cells if anchor else float("nan")
    anchor_cells = {r["cell"] for r in anchor}
    out = [
        "| judge | cells | Kendall τ | Spearman ρ | top-10 precision | τ on the anchor cells "
        "| judging s | training s | total s | total / training all cells alone |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, recs in judges.items():
        truth = np.array([table.test_acc_200ep[table.row(space.from_str(r["cell"]))] for r in recs])
        score = np.array([r["score"] for r in recs], dtype=float)
        tau = kendalltau(truth, score).statistic
        rho = spearmanr(truth, score).statistic
        sub = [i for i, r in enumerate(recs) if r["cell"] in anchor_cells]
        tau_a = kendalltau(truth[sub], score[sub]).statistic if len(sub) > 2 else float("nan")
        judging = sum(r["time_s"] for r in recs)
        if name.startswith("anchor"):
            training = 0.0
            judging = judging / len(recs) * n_cells  # scaled to all cells
        else:
            variant = "indicator" if name.startswith("BN") else name.split()[1]
            training = train_s.get(variant, float("nan"))
        total = judging + training
        out.append(
            f"| {name} | {len(recs)} | {tau:.3f} | {rho:.3f} | {precision_at(truth, score):.2f} "
            f"| {tau_a:.3f} | {judging:.1f} | {training:.0f} | {total:.0f} "
            f"| {total / anchor_all:.3f} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    parser.add_argument("--smoke", action="store_true", help="the tiny protocol (minutes)")
    parser.add_argument("--gpu", action="store_true", help="the large protocol on CUDA")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default by protocol)")
    parser.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    args = parser.parse_args()
    name = "smoke" if args.smoke else "large" if args.gpu else args.protocol
    p = dict(PROTOCOLS[name])
    if args.epochs is not None:
        p["epochs"] = args.epochs
    if not torch.cuda.is_available():
        p["device"] = "cpu"
    out = args.out or ROOT / "benchmarks" / "results" / f"oneshot_nb201_{name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_suffix(".work")
    work.mkdir(exist_ok=True)
    log = Log(out)
    protocol = {"name": name, **p, "calib": list(p["calib"])}
    if not log.done("protocol"):
        log.add({"key": "protocol", "kind": "protocol", **protocol})
    elif {k: v for k, v in log.get("protocol").items() if k not in ("key", "kind")} != protocol:
        raise SystemExit(f"{out}: written by another protocol; pass another --out")
    data = load_cifar(args.data, p["image_size"], p["n_train"])
    table = NB201Table.load()
    cells = cell_list(table, p["cells"])
    print(f"protocol {name}: {json.dumps(protocol)}")
    print(f"{data.describe()}; {len(cells)} cells; results -> {out}")

    # a variant whose every cell is judged is marked, so a resumed run (e.g. on another
    # machine, without the supernet checkpoints) goes straight to what is left
    for variant in ("affine", "noaffine", "indicator"):
        if log.done(f"judged/{variant}"):
            continue
        net = trained_supernet(p, data, log, work, variant)
        if variant == "indicator":
            judge_indicator(log, net, cells)
        else:
            judge_supernet(p, data, log, net, variant, cells)
        log.add({"key": f"judged/{variant}", "kind": "mark"})
    train_anchors(p, data, log, cells)
    print()
    print("\n".join(table_rows(log, table, len(cells))))


if __name__ == "__main__":
    main()
