"""The terminal's end of a search: the leaderboard with norm choices (80 columns), the
outcome's summary lines, and `normnas best`."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import optuna
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from normnas.report.status import counts, secs
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


_MACRO_BLOCK = re.compile(r"w(\d+)-k(\d+)-(\w+)-(\w+)-(\w+)-(res|plain)")
_PLACE = {"conv_norm_act": "cna", "conv_act_norm": "can", "norm_act_conv": "nac"}
_OPS = {"none": "-", "skip_connect": "id", "nor_conv_1x1": "c1", "nor_conv_3x3": "c3",
        "avg_pool_3x3": "ap"}  # fmt: skip


def _block(m: re.Match[str]) -> str:
    w, k, norm, place, _, tail = m.groups()
    n = "-" if norm == "none" else SHORT.get(norm, norm)
    return f"{w}/{k} {n}·{_PLACE.get(place, place)}{'+' if tail == 'res' else ''}"


def compact(arch: str) -> str:
    """A short arch string for an 80-column table (the full one is in `best --json` and the
    report): a macro block `w24-k5-groupnorm-norm_act_conv-relu-res` is `24/5 gn·nac+`
    (width/kernel norm·placement, + residual; stages split by |), an NB201 cell is its six
    ops in edge order (`c3 | id - | c1 c3 ap`)."""
    text = arch.strip()
    if _MACRO_BLOCK.search(text):
        text = re.sub(r"\] \[", " | ", _MACRO_BLOCK.sub(_block, text))
        text = text.replace("[", "").replace("]", "").replace(", ", " ")
        return re.sub(r" dropout=0\.0$", "", text).replace(" dropout=", " drop ")
    if text.startswith("|") and "~" in text:  # NB201: |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
        nodes = [n.strip("|").split("|") for n in text.split("+")]
        return " | ".join(" ".join(_OPS.get(op.split("~")[0], op) for op in n) for n in nodes)
    return text


def norm_choices(space: Any, params: dict[str, Any]) -> str:
    """The normalization of each block of an arch, e.g. 'bn·cna ×2, gn·nac'."""
    try:
        _, arch, _ = network_part(space, space.from_params(params))
    except Exception:
        return "?"
    stages = getattr(arch, "stages", None)
    if stages is None and hasattr(arch, "layers"):  # a LayerSpace: its convs and norm layers
        from normnas.spaces.layers import norm_layers

        pairs = norm_layers(arch)
    elif stages is None:
        return "bn (fixed)"  # NB201 cells: ReLU-Conv-BN everywhere
    else:
        pairs = [(b.norm, b.placement) for stage in stages for b in stage]
    tags = [
        SHORT.get(n, n) + ("" if p is None else "·" + "".join(w[0] for w in p.split("_")))
        for n, p in pairs
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


STOPPED = {
    "trials": "the trial budget",
    "wall": "the time budget",
    "cost": "the cost budget",
    "exhausted": "exhausting the space",
    "duplicates": "a long run of proposals with nothing new",
    "infeasible": "nothing meeting the constraints",
}


def finalist_latency(outcome: Any, space: Any, top: int = 5) -> dict[int, float]:
    """Measured batch-1 CPU latency (ms) of the leaderboard's finalists, by trial number.

    FLOPs alone mislead (pooling and memory-bound ops cost time they barely count), so the
    finalists' latency is measured at print time when the search did not record it.
    """
    from normnas.train import measure_latency

    data = getattr(outcome, "data", None)
    if data is None:
        return {}
    study = outcome.study
    out: dict[int, float] = {}
    for r in _top(study, top):
        if r.result.get("latency_ms") is not None:
            continue
        try:
            model = space.build(space.from_params(r.params), data.num_classes, data.in_channels)
            h, w = data.image_size
            out[r.number] = measure_latency(
                model, (data.in_channels, h, w), batch_size=1, device="cpu"
            ).median_ms
        except Exception:  # a figure for the table, never a reason to fail the command
            continue
    return out


def _top(study: optuna.Study, top: int) -> list[rec.TrialRecord]:
    recs = rec.records(study)
    front = rec.best_records(study, recs)
    done = [r for r in recs if r.evaluated and r.status == "ok" and r.values]
    first = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    done.sort(key=lambda r: (-r.values[0] if first else r.values[0], r.number))  # type: ignore[index]
    shown = done[:top]
    for r in front:  # a multi-objective front is always shown
        if r not in shown:
            shown.append(r)
    return shown


def leaderboard(
    study: optuna.Study,
    space: Any,
    top: int = 5,
    latency_of: dict[int, float] | None = None,
    width: int | None = None,
) -> Table:
    """The best trials (and the Pareto front), one line each in `width` columns (default:
    the terminal's)."""
    front = rec.best_records(study)
    shown = _top(study, top)
    latency_of = latency_of or {}
    table = Table(title=f"leaderboard of {study.study_name} (valid accuracy)")
    # one line per trial in 80 columns: the numbers never wrap, the compact arch string
    # takes the rest and ends in … when it is longer (whole in `best --json` and the report)
    table.add_column("#", no_wrap=True, min_width=4)
    # 50 = the other columns (4+8+7+7+5), their padding (2 each) and the 7 rules
    arch_width = max(12, (width or Console().width) - 50)
    table.add_column("arch", no_wrap=True, overflow="ellipsis", max_width=arch_width)
    for col, width in (("accuracy", 8), ("params", 7), ("FLOPs", 7), ("ms", 5)):
        table.add_column(col, no_wrap=True, justify="right", min_width=width)
    table.caption = (
        "arch: width/kernel norm·placement (cna conv→norm→act, can conv→act→norm, "
        "nac norm→act→conv), + residual; ms: batch-1 latency; * best/Pareto"
    )
    for r in shown:
        m = r.result
        table.add_row(
            str(r.number) + (" *" if r in front else ""),
            escape(compact(r.arch or "?")),
            _fmt(m.get("accuracy"), "acc"),
            _fmt(m.get("params"), "int"),
            _fmt(m.get("flops"), "int"),
            _fmt(m.get("latency_ms", latency_of.get(r.number)), "ms"),
        )
    return table


def print_outcome(outcome: Any, cfg: Any) -> None:
    from normnas.search.spaces import make_space

    console = Console()
    study = outcome.study
    space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
    console.print(leaderboard(study, space, latency_of=finalist_latency(outcome, space)))
    c = counts(study)
    s = outcome.summary
    line = f"trials: {c.get('ok', 0)} ok"
    for k in ("duplicate", "infeasible", "pruned", "failed", "diverged", "timeout", "interrupted"):
        if c.get(k):
            line += f", {c[k]} {k}"
    if s is not None:
        line += f"; search {secs(s.wall_s)}, stopped by {STOPPED.get(s.stopped_by, s.stopped_by)}"
    if outcome.final_s is not None:
        line += f"; final retrain {secs(outcome.final_s)}"
    if outcome.wall_s is not None:
        line += f"; whole command {secs(outcome.wall_s)}"
    console.print(line)
    for note in outcome.notes:
        console.print(f"note: {escape(note)}")
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


def print_quiet(outcome: Any) -> None:
    """`--quiet`: the best trial, its test accuracy, where the study and model are."""
    if outcome.best is not None:
        acc = outcome.best.result.get("accuracy")
        line = f"best #{outcome.best.number}" + (
            f": valid accuracy {100 * acc:.2f}%" if acc is not None else ""
        )
        if outcome.test_accuracy is not None:
            line += f", test accuracy {100 * outcome.test_accuracy:.2f}%"
        print(line)
    print(f"study   {outcome.study.study_name} in {outcome.storage}")
    if outcome.model_path is not None:
        print(f"model   {outcome.model_path}")


def best_json(study: optuna.Study, front: list[rec.TrialRecord]) -> str:
    """`normnas best --json`: the best trial (or the Pareto front), full architecture string,
    values by objective name, parameters and recorded result."""
    names = (
        study.metric_names
        or list(study_meta(study).get("config", {}).get("objectives", []))
        or [f"value{i}" for i in range(len(study.directions))]
    )
    out = [
        {
            "number": r.number,
            "arch": r.arch,
            "values": dict(zip(names, r.values or (), strict=False)),
            "params": r.params,
            "result": r.result,
        }
        for r in front
    ]
    return json.dumps(out[0] if len(out) == 1 else out, indent=2, default=str)


def _space_of(study: optuna.Study) -> Any:
    from normnas.config import parse_config
    from normnas.search.spaces import make_space

    config = study_meta(study).get("config")
    if not config:
        return None
    cfg = parse_config(config)
    return make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
