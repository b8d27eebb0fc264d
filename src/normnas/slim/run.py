"""`normnas slim`: sparsity-train a found network, prune it at each ratio, fine-tune, measure.

1. The network is trained on the train split with `sparsity · Σ|γ|` on its BN scales
   (`bn_sparsity`), from scratch (`start="retrain"`, `epochs` epochs) or from the study's
   saved final model (`start="final"`, `epochs` epochs of fine-tuning with the penalty;
   that model saw the valid split, so its valid accuracy is optimistic).
2. For each criterion and ratio, `prune_channels` removes that share of the channels.
3. Each pruned network, and the unpruned one (ratio 0), is fine-tuned `finetune_epochs`
   epochs without the penalty, so every row has had the same total epochs.
4. Each row records params, FLOPs (every op, `count_flops`), MACs, batch-1 CPU latency of
   the BN-folded network, valid and test accuracy. The latency of the unpruned network is
   measured again beside each pruned one, the two timed in alternating rounds, so their
   ratio (`speedup`) comes from one run under the same load.

Everything goes into a folder (default: `NAME.slim/` beside the study's storage):
`results.json` (settings and rows), `sparse.pt` (the network after step 1, reused by a
rerun), `unpruned.pt` and `CRITERION-RATIO.pt`, ordinary normnas checkpoints that carry
the pruned channel counts (`layer_shapes`), so `normnas export --checkpoint FILE` and
`normnas.search.final.load` read them. A rerun with the same settings skips the rows it
has; other settings are refused (give another --out).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normnas.slim.prune import CRITERIA, SlimError, check_criterion, prune_channels
from normnas.slim.sparsity import batchnorm_scales, bn_sparsity

RESULTS = "results.json"
SLIM_ATTR = "slim_results"  # the study attribute naming the results file


@dataclass(frozen=True)
class SlimSettings:
    """What decides the results (a rerun with other settings is refused)."""

    ratios: tuple[float, ...] = (0.3, 0.5, 0.7)
    criteria: tuple[str, ...] = ("bn",)
    sparsity: float = 1e-4
    epochs: int = 10  # sparsity training (or its fine-tuning from the final model)
    finetune_epochs: int = 3
    start: str = "retrain"
    min_channels: int | None = None
    finetune_lr: float | None = None  # None: the training's own lr
    seed: int = 0

    def key(self) -> dict[str, Any]:
        """The settings a row depends on (ratios and criteria only say which rows)."""
        d = dataclasses.asdict(self)
        d.pop("ratios")
        d.pop("criteria")
        return d


@dataclass
class SlimOutcome:
    folder: Path
    unpruned: dict[str, Any]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def check_settings(settings: SlimSettings) -> None:
    """SlimError (one line, naming the option) for settings that cannot run."""
    for r in settings.ratios:
        if not (isinstance(r, (int, float)) and 0 < r < 1):
            raise SlimError(f"--ratios: each ratio must be in (0, 1), got {r!r}")
    for c in settings.criteria:
        if c not in CRITERIA:
            raise SlimError(f"--criterion: unknown {c!r}; valid: {', '.join(CRITERIA)}")
    if not (isinstance(settings.sparsity, (int, float)) and settings.sparsity >= 0):
        raise SlimError(f"--sparsity must be >= 0, got {settings.sparsity!r}")
    if settings.epochs < 1 or settings.finetune_epochs < 1:
        raise SlimError("--epochs and --finetune-epochs must be >= 1")
    if settings.start not in ("retrain", "final"):
        raise SlimError(f"--from must be retrain or final, got {settings.start!r}")


def _echo_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def slim_network(
    space: Any,
    arch: Any,
    data: Any,
    train_config: Any,
    settings: SlimSettings,
    folder: str | Path,
    start_model: nn.Module | None = None,
    echo: Callable[[str], None] | None = _echo_stderr,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    latency_runs: int = 20,
    latency_rounds: int = 5,
    meta: dict[str, Any] | None = None,
) -> SlimOutcome:
    """Steps 1-4 of the module doc for `arch` of `space` on `data`, trained as
    `train_config` says, into `folder`. `start_model` is the network `start="final"`
    fine-tunes (the study's final model); `on_row(row)` is called as each row is done."""
    from normnas.train import evaluate, fit

    check_settings(settings)
    say = echo or (lambda _line: None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = _read_results(folder / RESULTS, settings)
    h, w = data.image_size
    shape = (int(data.in_channels), int(h), int(w))
    torch.manual_seed(settings.seed)
    fresh = space.build(arch, data.num_classes, data.in_channels)
    for c in settings.criteria:  # before any training: `bn` on a network without BN
        check_criterion(fresh, c)
    device = str(train_config.device)

    def train_cfg(epochs: int, lr: float | None = None) -> Any:
        return dataclasses.replace(
            train_config, epochs=int(epochs), seed=settings.seed,
            warmup_epochs=min(train_config.warmup_epochs, int(epochs)),
            lr=float(lr) if lr is not None else train_config.lr, max_time_s=None,
        )  # fmt: skip

    def scores(model: nn.Module) -> dict[str, float | None]:
        valid = evaluate(model, data.valid, device=device).accuracy if len(data.valid) else None
        test = evaluate(model, data.test, device=device).accuracy
        return {"valid_accuracy": None if valid is None else float(valid),
                "test_accuracy": float(test)}  # fmt: skip

    # 1. the sparsity-trained network (kept: a rerun with more ratios starts from it)
    sparse_path = folder / "sparse.pt"
    sparse = _load_weights(sparse_path, fresh, settings)
    if sparse is None:
        net = fresh if start_model is None else start_model
        n_bn = len(batchnorm_scales(net))
        how = "from the final model" if start_model is not None else "from scratch"
        say(
            f"slim: training {how} for {settings.epochs} epochs with sparsity "
            f"{settings.sparsity:g} on the scales of {n_bn} BatchNorm layers"
        )
        with bn_sparsity(net, settings.sparsity):
            result = fit(net, data, train_cfg(settings.epochs), train_split=data.train)
        if result.status not in ("ok", "timeout"):
            raise SlimError(f"slim: the sparsity training ended {result.status}: {result.error}")
        sparse = net.cpu().eval()
        _save(sparse_path, {"settings": settings.key(), "state_dict": _cpu_state(sparse)})
    near_zero = _near_zero_share(sparse)
    ft = train_cfg(settings.finetune_epochs, settings.finetune_lr)

    def finish(model: nn.Module, name: str, extra: dict[str, Any]) -> dict[str, Any]:
        fit(model, data, ft, train_split=data.train)
        model = model.cpu().eval()
        from normnas.train.cost import count_ops, count_params

        ops = count_ops(model, shape)
        row = {
            **extra, "params": int(count_params(model)), "flops": int(ops.flops),
            "macs": int(ops.macs), **scores(model), "checkpoint": f"{name}.pt",
        }  # fmt: skip
        return row

    # 2-4. the unpruned row, then each criterion and ratio
    if results.get("unpruned") is None:
        say(f"slim: fine-tuning the unpruned network for {settings.finetune_epochs} epochs")
        base = _copy(sparse)
        results["unpruned"] = finish(base, "unpruned", {"criterion": "none", "ratio": 0.0})
        _save_checkpoint(
            folder / "unpruned.pt", space, arch, data, base, fresh, results["unpruned"], meta
        )
        _write_results(folder / RESULTS, settings, results)
    unpruned = results["unpruned"]
    base_model = _load_checkpoint_model(folder / "unpruned.pt")
    rows: list[dict[str, Any]] = results["rows"]
    done = {(r["criterion"], float(r["ratio"])) for r in rows}
    for criterion in settings.criteria:
        for ratio in settings.ratios:
            if (criterion, float(ratio)) in done:
                continue
            pruned, plan = prune_channels(
                sparse, ratio, criterion, example=_example(data, shape),
                min_channels=settings.min_channels, seed=settings.seed,
            )  # fmt: skip
            for note in plan.notes:
                say(f"slim: {criterion} {ratio:g}: {note}")
            say(
                f"slim: {criterion} {ratio:g}: removed {plan.n_removed} of {plan.candidates} "
                f"channels; fine-tuning for {settings.finetune_epochs} epochs"
            )
            name = f"{criterion}-{ratio:g}"
            row = finish(pruned, name, {
                "criterion": criterion, "ratio": float(ratio), "removed": plan.n_removed,
                "candidates": plan.candidates, "notes": plan.notes,
            })  # fmt: skip
            base_ms, ms, reliable = paired_latency(
                base_model, pruned, shape, runs=latency_runs, rounds=latency_rounds
            )
            row.update(
                latency_ms=ms, latency_unpruned_ms=base_ms,
                speedup=base_ms / ms if ms > 0 else None, latency_reliable=reliable,
                params_share=row["params"] / unpruned["params"],
                flops_share=row["flops"] / unpruned["flops"],
            )  # fmt: skip
            plan_dict = plan.as_dict()
            _save_checkpoint(
                folder / f"{name}.pt", space, arch, data, pruned, fresh, row, meta,
                slim={**plan_dict, "sparsity": settings.sparsity},
            )  # fmt: skip
            rows.append(row)
            _write_results(folder / RESULTS, settings, results)
            if on_row is not None:
                on_row(row)
    results["near_zero_gamma_share"] = near_zero
    _write_results(folder / RESULTS, settings, results)
    order = {(c, float(r)): i for i, (c, r) in enumerate(
        (c, r) for c in settings.criteria for r in settings.ratios)}  # fmt: skip
    wanted = [r for r in rows if (r["criterion"], float(r["ratio"])) in order]
    wanted.sort(key=lambda r: order[(r["criterion"], float(r["ratio"]))])
    return SlimOutcome(folder, unpruned, wanted)


def paired_latency(
    a: nn.Module, b: nn.Module, shape: Sequence[int], runs: int = 20, rounds: int = 5
) -> tuple[float, float, bool]:
    """Batch-1 CPU latency (ms) of `a` and `b` with BatchNorm folded, timed in alternating
    rounds (a, b, a, b, ...) by `measure_latency`; each figure is its smallest round median,
    so load that comes and goes hits both alike. Also whether every round was reliable."""
    from normnas.nn import fold_bn
    from normnas.train import measure_latency

    nets = [fold_bn(a.cpu().eval()).eval(), fold_bn(b.cpu().eval()).eval()]
    best = [math.inf, math.inf]
    reliable = True
    for _ in range(rounds):
        for i, net in enumerate(nets):
            lat = measure_latency(net, shape, batch_size=1, runs=runs, rounds=1, warmup=3)
            best[i] = min(best[i], lat.median_ms)
            reliable = reliable and lat.reliable
    return best[0], best[1], reliable


def _example(data: Any, shape: Sequence[int]) -> torch.Tensor:
    x = data.train.x[:2] if len(data.train) >= 2 else torch.randn(2, *shape)
    return x.detach().float().cpu()


def _near_zero_share(model: nn.Module, below: float = 1e-2) -> float | None:
    gammas = [g.detach().abs().flatten() for g in batchnorm_scales(model)]
    if not gammas:
        return None
    allg = torch.cat(gammas)
    return float((allg < below).float().mean())


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _save(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_weights(path: Path, fresh: nn.Module, settings: SlimSettings) -> nn.Module | None:
    """The kept sparsity-trained network when it was made with these settings."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("settings") != settings.key():
            return None
        model = _copy(fresh)
        model.load_state_dict(saved["state_dict"])
    except Exception:  # damaged or another network's: train again
        return None
    return model.eval()


def _save_checkpoint(
    path: Path, space: Any, arch: Any, data: Any, model: nn.Module, fresh: nn.Module,
    row: dict[str, Any], meta: dict[str, Any] | None, slim: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    from normnas.nn.structure import changed_shapes, layer_shapes
    from normnas.search.checkpoints import make_checkpoint

    ckpt = make_checkpoint(
        space, arch, data, model, test_accuracy=row["test_accuracy"],
        valid_accuracy=row["valid_accuracy"], source="slim",
        layer_shapes=changed_shapes(layer_shapes(fresh), layer_shapes(model)),
        slim=slim or {"ratio": 0.0}, **(meta or {}),
    )  # fmt: skip
    _save(path, ckpt)


def _load_checkpoint_model(path: Path) -> nn.Module:
    from normnas.search.final import load

    model, _ = load(path)
    return model


def _read_results(path: Path, settings: SlimSettings) -> dict[str, Any]:
    if not path.is_file():
        return {"settings": settings.key(), "unpruned": None, "rows": []}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SlimError(
            f"{path}: not a readable slim results file ({e}); use another --out"
        ) from None
    if results.get("settings") != settings.key():
        raise SlimError(
            f"{path}: holds results of other settings ({results.get('settings')}); "
            "give another --out to slim with these"
        )
    results.setdefault("rows", [])
    return results


def _write_results(path: Path, settings: SlimSettings, results: dict[str, Any]) -> None:
    results["settings"] = settings.key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_results(path: str | Path) -> dict[str, Any] | None:
    """A slim results file (`results.json`, or the folder holding it), or None."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def slim(
    study: str,
    storage: str | None = None,
    ratios: Sequence[float] = (0.3, 0.5, 0.7),
    sparsity: float = 1e-4,
    epochs: int | None = None,
    criterion: str | Sequence[str] = "bn",
    out: str | Path | None = None,
    finetune_epochs: int | None = None,
    start: str = "retrain",
    min_channels: int | None = None,
    data: str | None = None,
    data_root: str | None = None,
    device: str | None = None,
    echo: Callable[[str], None] | None = _echo_stderr,
) -> SlimOutcome:
    """Slim the best architecture of `study` (module doc). `epochs` defaults to the
    study's training epochs, `finetune_epochs` to a quarter of `epochs` (at least 1);
    `criterion` is bn, l1, random or several ("bn,l1"); `data`/`data_root` say where the
    study's data is now when it moved. Returns the rows; raises SlimError (one line) for
    bad settings, `bn` on a network without BatchNorm, or a ratio that empties a layer."""
    from normnas.assemble import build_parts, ensure_final_model
    from normnas.config import parse_config
    from normnas.errors import DataError, SearchFailedError
    from normnas.search import records as rec
    from normnas.search.final import data_error, load, rebuild_config
    from normnas.search.study import (
        default_storage,
        load_study,
        open_storage,
        study_file,
        study_meta,
    )

    criteria = (
        tuple(c.strip() for c in criterion.split(","))
        if isinstance(criterion, str)
        else (tuple(criterion))
    )
    url = storage or default_storage()
    s = load_study(study, open_storage(url))
    front = rec.best_records(s)
    if not front:
        raise SearchFailedError(f"study {study!r} has no completed trial to slim")
    config = rebuild_config(study, study_meta(s), data, data_root)
    if device is not None:
        config["device"] = device
    try:
        parts = build_parts(parse_config(config), judge=False)
    except DataError as e:
        raise data_error(study, config, e) from None
    arch = parts.space.from_params(front[0].params)
    tc = parts.train_config
    n = int(epochs or tc.epochs)
    settings = SlimSettings(
        ratios=tuple(float(r) for r in ratios), criteria=criteria, sparsity=float(sparsity),
        epochs=n, finetune_epochs=int(finetune_epochs or max(1, round(n / 4))), start=start,
        min_channels=min_channels, seed=int(tc.seed),
    )  # fmt: skip
    check_settings(settings)
    start_model = None
    if start == "final":
        start_model, _ = load(ensure_final_model(s, url, data=data, data_root=data_root))
        start_model.train()
    folder = Path(out) if out is not None else study_file(url, study, ".slim")
    outcome = slim_network(
        parts.space, arch, parts.data, tc, settings, folder, start_model=start_model,
        echo=echo, meta={"study": study, "trial": front[0].number},
    )  # fmt: skip
    try:  # the report finds the results through the study (best effort: read-only storage)
        s.set_user_attr(SLIM_ATTR, str((outcome.folder / RESULTS).resolve()))
    except Exception:
        outcome.notes.append("the study could not record where the results are")
    return outcome
