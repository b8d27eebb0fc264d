"""Terminal output of a search: leaderboard with norm choices, status, best."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from normnas.search import records as rec
from normnas.search.spaces import network_part
from normnas.search.study import study_meta

SHORT = {"batchnorm": "bn", "groupnorm": "gn", "instancenorm": "in", "layernorm": "ln"}
_COMPACT = {
    **{f"-{k}-": f"-{v}-" for k, v in SHORT.items()},
    "-conv_norm_act-": "-cna-",
    "-conv_act_norm-": "-can-",
    "-norm_act_conv-": "-nac-",
    "-plain]": "]",
    "-plain,": ",",
    "-res]": "+res]",
    "-res,": "+res,",
}


def compact(arch: str) -> str:
    """A shorter arch string for tables: norm and placement names abbreviated."""
    for long, short in _COMPACT.items():
        arch = arch.replace(long, short)
    return arch


def norm_choices(space: Any, params: dict[str, Any]) -> str:
    """The normalization of each block of an arch, e.g. 'bn·cna ×2, gn·nac'."""
    try:
        _, arch, _ = network_part(space, space.from_params(params))
    except Exception:
        return "?"
    stages = getattr(arch, "stages", None)
    if stages is None:
        return "bn (fixed)"  # NB201 cells: ReLU-Conv-BN everywhere
    tags = [
        f"{SHORT.get(b.norm, b.norm)}·{''.join(w[0] for w in b.placement.split('_'))}"
        for stage in stages
        for b in stage
    ]
    counts = Counter(tags)
    return ", ".join(f"{t} ×{n}" if n > 1 else t for t, n in counts.items())


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "acc":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{value / 1e3:,.1f}k" if value < 1e6 else f"{value / 1e6:,.2f}M"
    return f"{value:.2f}"


def leaderboard(study: optuna.Study, space: Any, top: int = 5) -> Table:
    recs = rec.records(study)
    front = rec.best_records(study, recs)
    done = [r for r in recs if r.evaluated and r.status == "ok" and r.values]
    first = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    done.sort(key=lambda r: (-r.values[0] if first else r.values[0], r.number))  # type: ignore[index]
    shown = done[:top]
    for r in front:  # a multi-objective front is always shown
        if r not in shown:
            shown.append(r)
    table = Table(title=f"leaderboard of {study.study_name} (valid accuracy)")
    for col in ("#", "arch", "accuracy", "params", "FLOPs", "latency ms", "norm·placement"):
        table.add_column(col, overflow="fold")
    table.caption = (
        "placement: cna conv→norm→act, can conv→act→norm, nac norm→act→conv; * best/Pareto"
    )
    for r in shown:
        m = r.result
        table.add_row(
            str(r.number) + (" *" if r in front else ""),
            escape(compact(r.arch or "?")),
            _fmt(m.get("accuracy"), "acc"),
            _fmt(m.get("params"), "int"),
            _fmt(m.get("flops"), "int"),
            _fmt(m.get("latency_ms"), "ms"),
            norm_choices(space, r.params),
        )
    return table


def counts(study: optuna.Study) -> dict[str, int]:
    c: Counter[str] = Counter()
    for r in rec.records(study):
        c[r.state.name.lower()] += 1
        if r.duplicate_of is not None:
            c["duplicate"] += 1
        elif r.status:
            c[r.status] += 1
    return dict(c)


def print_outcome(outcome: Any, cfg: Any) -> None:
    from normnas.search.spaces import make_space

    console = Console()
    study = outcome.study
    space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
    console.print(leaderboard(study, space))
    c = counts(study)
    s = outcome.summary
    line = f"trials: {c.get('ok', 0)} ok"
    for k in ("duplicate", "infeasible", "pruned", "failed", "diverged", "interrupted"):
        if c.get(k):
            line += f", {c[k]} {k}"
    if s is not None:
        line += f"; this run {s.wall_s:.0f}s, stopped by {s.stopped_by}"
    console.print(line)
    if outcome.recovered:
        console.print(f"resumed: trials {outcome.recovered} were interrupted and re-queued")
    if outcome.best is not None and outcome.test_accuracy is not None:
        console.print(
            f"best #{outcome.best.number}: test accuracy {100 * outcome.test_accuracy:.2f}% "
            "(retrained on train+valid)"
        )
    console.print(f"study   {study.study_name} in {outcome.storage}")
    if outcome.model_path is not None:
        console.print(f"model   {outcome.model_path}")


def print_status(study: optuna.Study, url: str) -> None:
    console = Console()
    c = counts(study)
    console.print(f"study {study.study_name} in {url}")
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "no trials")
    front = rec.best_records(study)
    if front:
        names = study_meta(study).get("config", {}).get("objectives", [])
        vals = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, front[0].values or (), strict=False))
        console.print(f"best #{front[0].number}: {vals}  {escape(front[0].arch or '?')}")
    path = study.user_attrs.get("model_path")
    if path:
        console.print(f"model {path}")


def print_best(study: optuna.Study, front: list[rec.TrialRecord]) -> None:
    console = Console()
    space = _space_of(study)
    for r in front:
        m = r.result
        console.print(
            f"#{r.number} {escape(r.arch or '?')}\n  accuracy {_fmt(m.get('accuracy'), 'acc')}, "
            f"params {_fmt(m.get('params'), 'int')}, FLOPs {_fmt(m.get('flops'), 'int')}, "
            f"norms {norm_choices(space, r.params) if space is not None else '?'}"
        )


def _space_of(study: optuna.Study) -> Any:
    from normnas.config import parse_config
    from normnas.search.spaces import make_space

    config = study_meta(study).get("config")
    if not config:
        return None
    cfg = parse_config(config)
    return make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)


def ensure_final_model(study: optuna.Study, url: str) -> Path:
    """The study's best-model checkpoint; retrained from the study's config if missing."""
    path = study.user_attrs.get("model_path")
    if path and Path(path).exists():
        return Path(path)
    from normnas.config import parse_config
    from normnas.search import final
    from normnas.search.session import build_parts
    from normnas.search.study import storage_dir

    config = study_meta(study).get("config")
    if not config:
        raise ValueError(f"study {study.study_name!r} has no normnas config to retrain from")
    front = rec.best_records(study)
    if not front:
        raise ValueError(f"study {study.study_name!r} has no completed trial")
    cfg = parse_config(config)
    parts = build_parts(cfg)
    arch = parts.space.from_params(front[0].params)
    fm = final.retrain(
        parts.space, arch, parts.data, parts.train_config, study.study_name, front[0].number
    )
    out = final.save(fm, storage_dir(url) / f"{study.study_name}-best.pt")
    study.set_user_attr("model_path", str(out))
    study.set_user_attr("test_accuracy", fm.test_accuracy)
    return out
