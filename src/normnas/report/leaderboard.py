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

from normnas.report.formats import UNRELIABLE_MARK, fmt, latency_warning, objective_label
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
_OP_NAMES = {"nor_conv_3x3": "conv 3×3", "nor_conv_1x1": "conv 1×1", "avg_pool_3x3": "avg pool 3×3",
             "skip_connect": "skip", "none": "none"}  # fmt: skip
MACRO_LEGEND = (
    "arch: width/kernel norm·placement (cna conv→norm→act, can conv→act→norm, "
    "nac norm→act→conv), + residual"
)
NB201_LEGEND = (
    "arch: the cell's op on each edge, by the node it enters (node 1 | node 2 from 0, 1 | "
    "node 3 from 0, 1, 2): " + ", ".join(f"{_OPS[op]} {name}" for op, name in _OP_NAMES.items())
)


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
    if _is_nb201(text):  # NB201: |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
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


def _is_nb201(arch: str) -> bool:
    text = arch.strip()
    return text.startswith("|") and "~" in text


def legend(archs: list[str]) -> str:
    """The caption's key to the arch column: NB201 cells or macro blocks, as shown."""
    if any(_is_nb201(a) for a in archs):
        return NB201_LEGEND
    if any(_MACRO_BLOCK.search(a) for a in archs):
        return MACRO_LEGEND
    return ""


STOPPED = {
    "trials": "the trial budget",
    "wall": "the time budget",
    "cost": "the cost budget",
    "exhausted": "exhausting the space",
    "cascade": "judging every candidate the cascade's screens passed",
    "duplicates": "a long run of proposals with nothing new",
    "infeasible": "nothing meeting the constraints",
}


def finalist_costs(outcome: Any, space: Any, top: int = 5) -> dict[int, dict[str, Any]]:
    """The batch-1 CPU latency (`latency_ms` and how it was measured, as a trial records
    it) and the FLOPs of the leaderboard's finalists whose trials lack them, by trial number.

    FLOPs alone mislead (pooling and memory-bound ops cost time they barely count), so the
    finalists' latency is measured at print time when the search did not record it; the
    FLOPs are counted when the evaluator did not (a supernet, proxies, a gradient method).
    """
    from normnas.train.cost import LatencyMs, measure_latency

    data = getattr(outcome, "data", None)
    if data is None:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for r in _top(outcome.study, top):
        need_latency = r.result.get("latency_ms") is None
        need_flops = r.result.get("flops") is None
        # predicted for a target (`--target`): the finalists are measured there for real
        target = (r.result.get("extra") or {}).get("latency_target")
        if not (need_latency or need_flops or target):
            continue
        try:
            arch = space.from_params(r.params)
            model = space.build(arch, data.num_classes, data.in_channels)
            shape = (data.in_channels, *data.image_size)
            got: dict[str, Any] = {}
            if target:
                from normnas.latency.search import measure_finalist

                got["latency_measured_ms"] = measure_finalist(
                    space, arch, str(target), shape, data.num_classes
                )
                got["latency_target"] = str(target)
            if need_flops:
                got["flops"] = _flops(space, arch, model, data)
            if need_latency:
                latency = measure_latency(model, shape, batch_size=1, device="cpu")
                got["latency_ms"] = latency.median_ms
                got.update(rec.latency_attrs(LatencyMs.of(latency)))
        except Exception:  # a figure for the table, never a reason to fail the command
            continue
        out[r.number] = got
    return out


def _flops(space: Any, arch: Any, model: Any, data: Any) -> int:
    """FLOPs of one sample: by the space's formula where it has one (NB201's: counting its
    full-size network takes seconds), else counted on the built network."""
    from normnas.train.cost import count_flops

    net_space, net_arch, _ = network_part(space, arch)
    size = tuple(data.image_size)  # (H, W) of images, (T,) of sequences
    op_count = getattr(net_space, "op_count", None)
    if op_count is not None and len(size) == 2 and size[0] == size[1]:
        return int(op_count(net_arch, num_classes=data.num_classes,
                            in_channels=data.in_channels, image_size=size[0])[0])  # fmt: skip
    return count_flops(model, (data.in_channels, *size))


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
    measured: dict[int, dict[str, Any]] | None = None,
    width: int | None = None,
) -> Table:
    """The best trials (and the Pareto front), one line each in `width` columns (default:
    the terminal's). `measured` fills in what a trial did not record (`finalist_costs`).

    A latency measured on a busy machine (`latency_reliable` False) is marked with !, and
    the caption says under what load. A judge's score (proxies, the BN indicator) stands in
    the accuracy column as a plain number, under the column `score` and the score's name in
    the title."""
    front = rec.best_records(study)
    shown = _top(study, top)
    measured = measured or {}
    label = objective_label(study)
    table = Table(
        title=f"leaderboard of {study.study_name} "
        + (f"({label.name}, not an accuracy)" if label.is_score else "(valid accuracy)")
    )
    # one line per trial in 80 columns: the numbers never wrap, the compact arch string
    # takes the rest and ends in … when it is longer (whole in `best --json` and the report)
    table.add_column("#", no_wrap=True, min_width=4)
    # 51 = the other columns (4+8+7+7+6), their padding (2 each) and the 7 rules
    arch_width = max(12, (width or Console().width) - 51)
    table.add_column("arch", no_wrap=True, overflow="ellipsis", max_width=arch_width)
    # "score" keeps the column's width: the arch column gets the rest of the line
    first = "score" if label.is_score else "accuracy"
    for col, width in ((first, 8), ("params", 7), ("FLOPs", 7), ("ms", 6)):
        table.add_column(col, no_wrap=True, justify="right", min_width=width)
    unreliable: list[dict[str, Any]] = []
    targets: set[str] = set()
    for r in shown:
        m = {**measured.get(r.number, {}), **{k: v for k, v in r.result.items() if v is not None}}
        ms = fmt(m.get("latency_ms"), "ms")
        if m.get("latency_measured_ms") is not None:  # predicted / measured on the target
            ms = f"{m['latency_ms']:.3g}/{m['latency_measured_ms']:.3g}"
            targets.add(str(m.get("latency_target")))
        if m.get("latency_ms") is not None and m.get("latency_reliable") is False:
            ms += UNRELIABLE_MARK
            unreliable.append(m)
        table.add_row(
            str(r.number) + (" *" if r in front else ""),
            escape(compact(r.arch or "?")),
            label.fmt(m.get("accuracy")),
            fmt(m.get("params"), "int"),
            fmt(m.get("flops"), "int"),
            ms,
        )
    key = legend([r.arch or "" for r in shown])
    lines = [(key + "; " if key else "") + "ms: batch-1 latency; * best/Pareto"]
    if targets:
        lines.append(f"ms: predicted/measured on {'; '.join(sorted(targets))}")
    if unreliable:
        loads = [m["latency_load"] for m in unreliable if m.get("latency_load") is not None]
        cores = next((m["latency_cores"] for m in unreliable if m.get("latency_cores")), None)
        lines.append(f"{UNRELIABLE_MARK} " + latency_warning(max(loads, default=None), cores))
    table.caption = "\n".join(lines)
    return table


def print_outcome(outcome: Any, cfg: Any) -> None:
    from normnas.search.spaces import make_space

    console = Console()
    study = outcome.study
    space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
    console.print(leaderboard(study, space, measured=finalist_costs(outcome, space)))
    c = counts(study)
    s = outcome.summary
    line = f"trials: {c.get('ok', 0)} ok"
    for k in (
        "screened", "duplicate", "infeasible", "pruned", "failed", "diverged", "timeout",
        "interrupted",
    ):  # fmt: skip
        if c.get(k):
            line += f", {c[k]} {k}"
    if s is not None:
        line += f"; search {secs(s.wall_s)}, stopped by {STOPPED.get(s.stopped_by, s.stopped_by)}"
    if outcome.final_s is not None:
        line += f"; final retrain {secs(outcome.final_s)}"
    if outcome.wall_s is not None:
        line += f"; whole command {secs(outcome.wall_s)}"
    console.print(line)
    exhausted = exhausted_line(s)
    if exhausted:
        console.print(f"note: {exhausted}")
    for note in outcome.notes:
        console.print(f"note: {escape(note)}")
    if outcome.recovered:
        console.print(f"resumed: trials {outcome.recovered} were interrupted and re-queued")
    if outcome.best is not None and outcome.test_accuracy is not None:
        console.print(
            f"best #{outcome.best.number}: test accuracy {100 * outcome.test_accuracy:.2f}% "
            + _final_how(outcome)
        )
    console.print(f"study   {study.study_name} in {outcome.storage}")
    if outcome.model_path is not None:
        console.print(f"model   {outcome.model_path}")


def exhausted_line(summary: Any) -> str:
    """Why a search stopped short of its budget when it ran out of new architectures: "the
    space holds 3 architectures; all evaluated"; '' otherwise (or when the space's size is
    unknown: a sampler's own exhaustion, e.g. grid, says so in the stopped-by words)."""
    size = getattr(summary, "extra", {}).get("space_size") if summary is not None else None
    if summary is None or summary.stopped_by != "exhausted" or not size:
        return ""
    from normnas.text import plural

    return f"the space holds {plural(size, 'architecture')}; all evaluated"


def _final_how(outcome: Any) -> str:
    """How the saved model was made, in brackets: the honest reading of its test figure."""
    if outcome.final_status == "trial-weights":
        return "(the trial's own network, trained on train only: see the warning)"
    if outcome.final_status == "timeout":
        return "(retrained on train+valid, cut short by --time: see the warning)"
    return "(retrained on train+valid)"


def print_best(study: optuna.Study, front: list[rec.TrialRecord]) -> None:
    console = Console()
    space = _space_of(study)
    label = objective_label(study)
    for r in front:
        m = r.result
        console.print(
            f"#{r.number} {escape(r.arch or '?')}\n  {label.name} {label.fmt(m.get('accuracy'))}, "
            f"params {fmt(m.get('params'), 'int')}, FLOPs {fmt(m.get('flops'), 'int')}, "
            f"norms {norm_choices(space, r.params) if space is not None else '?'}"
        )


def print_quiet(outcome: Any) -> None:
    """`--quiet`: the best trial, its test accuracy, where the study and model are."""
    if outcome.best is not None:
        acc = outcome.best.result.get("accuracy")
        label = objective_label(outcome.study)
        what = label.name if label.is_score else "valid accuracy"
        line = f"best #{outcome.best.number}" + (
            f": {what} {label.fmt(acc)}" if acc is not None else ""
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
