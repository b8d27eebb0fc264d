"""The report's sections, each an HTML string built from a `StudyData`."""

from __future__ import annotations

import json
import math
from collections import Counter
from html import escape
from typing import Any

from normnas.report import analysis
from normnas.report.arch_figures import arch_figure
from normnas.report.formats import UNRELIABLE_MARK, latency_warning
from normnas.report.leaderboard import STOPPED
from normnas.report.study_data import FINAL_MODEL_ATTR, LAST_RUN_ATTR, StudyData, TrialRow
from normnas.report.svg import (
    PALETTE,
    SHARE,
    Axes,
    box_plot,
    colour,
    hbar_chart,
    histogram,
    legend,
    paired_bars,
)
from normnas.text import plural

OBJECTIVE_LABELS = {
    "accuracy": "valid accuracy",
    "params": "parameters",
    "flops": "FLOPs",
    "latency": "latency (ms)",
}


def fmt_value(objective: str, v: float | None) -> str:
    if v is None:
        return "–"
    if objective == "accuracy":
        return f"{100 * v:.2f}%"
    if objective in ("params", "flops"):
        return f"{v / 1e3:,.1f}k" if v < 1e6 else f"{v / 1e6:,.2f}M"
    return f"{v:.3g}"


def _value(data: StudyData, objective: str, v: float | None) -> str:
    """`fmt_value`, but a judge's score under `accuracy` as the plain number it is."""
    if data.label(objective).is_score:
        return "–" if v is None else f"{v:.4g}"
    return fmt_value(objective, v)


def _name(data: StudyData, objective: str) -> str:
    """An objective as an axis or a column names it: a judge's score by its own name."""
    label = data.label(objective)
    return label.name if label.is_score else OBJECTIVE_LABELS.get(objective, objective)


def objective_name(data: StudyData, objective: str) -> str:
    """An objective as the report's header lists it: its spelling, or a judge's score."""
    label = data.label(objective)
    return label.name if label.is_score else objective


def _is_share(data: StudyData, objective: str) -> bool:
    """Are `objective`'s values a fraction (an axis from 0 to 100%)?"""
    return objective == "accuracy" and data.label(objective).percent


def _kv(rows: list[tuple[str, str]]) -> str:
    return (
        '<table class="kv">'
        + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
        + "</table>"
    )


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{escape(title)}</h2>{body}</section>'


# -- summary ---------------------------------------------------------------------------------
def summary(data: StudyData) -> str:
    cfg = data.meta.get("config") or {}
    last = data.attrs.get(LAST_RUN_ATTR) or {}
    counts = Counter(r.category for r in data.rows)
    chips = " ".join(
        f'<span class="chip" style="border-color:{colour(k)}">{escape(k)} {n}</span>'
        for k, n in sorted(counts.items(), key=lambda p: -p[1])
    )
    rows: list[tuple[str, str]] = [
        ("study", f"<code>{escape(data.name)}</code> in <code>{escape(data.storage)}</code>")
    ]
    if cfg:
        train = cfg.get("train") or {}
        rows += [
            ("data", escape(str(cfg.get("data")))),
            (
                "space",
                escape(data.space_name)
                + (
                    " + training recipe"
                    if (cfg.get("space") or {}).get("recipe") is not None
                    else ""
                ),
            ),
            (
                "strategy",
                escape(str(cfg.get("method") or cfg.get("strategy")))
                + (
                    f" <small>{escape(json.dumps(cfg.get('strategy_options')))}</small>"
                    if cfg.get("strategy_options")
                    else ""
                ),
            ),
            (
                "evaluator",
                escape(str(cfg.get("evaluator", "train")))
                + (
                    f", {plural(train.get('epochs'), 'epoch')} per candidate"
                    if cfg.get("evaluator", "train") == "train" and train.get("epochs")
                    else ""
                ),
            ),
            ("budget", escape(_budget(cfg))),
        ]
    else:
        rows.append(("space", escape(data.space_name)))
    (
        rows.append(
            (
                "objectives",
                escape(
                    ", ".join(
                        f"{o} ({'max' if m else 'min'})"
                        for o, m in zip(data.objectives, data.maximize, strict=False)
                    )
                )
                + (
                    f" <small>(holds the judge's {escape(data.score)}: a number to rank by, "
                    "not a fraction; kept under the objective's name so that every sampler "
                    "maximizes it)</small>"
                    if data.score
                    else ""
                ),
            )
        ),
    )
    if last:
        rows.append(
            (
                "last run",
                escape(
                    f"{plural(last.get('n_evaluated', '?'), 'trial')} evaluated in "
                    f"{last.get('wall_s', 0):.0f}s, "
                    f"stopped by {STOPPED.get(last.get('stopped_by'), last.get('stopped_by'))}"
                ),
            )
        )
    rows.append(("trials", chips or "none"))
    best = data.row(data.chosen) if data.chosen is not None else None
    if best is not None and best.values:
        vals = ", ".join(
            f"{_name(data, o)} {_value(data, o, v)}"
            for o, v in zip(data.objectives, best.values, strict=False)
        )
        rows.append(("best", f"#{best.number}: {escape(vals)}<br><code>{escape(best.arch)}</code>"))
    test = data.attrs.get("test_accuracy")
    if isinstance(test, (int, float)):
        rows.append(
            (
                "test accuracy",
                f"{100 * test:.2f}% <small>("
                + (
                    "the best trial's own network, trained on train only"
                    if data.attrs.get("final_source") == "trial"
                    else "the best retrained on train+valid"
                )
                + ", tested once)</small>",
            )
        )
    final_note = data.attrs.get("final_note")
    if final_note:  # the model is worse than a plain retrain would be: say so where it is read
        rows.append(("warning", f"<strong>{escape(str(final_note))}</strong>"))
    versions = data.meta.get("versions") or {}
    if versions:
        rows.append(("versions", escape(", ".join(f"{k} {v}" for k, v in versions.items()))))
    command = data.meta.get("command")
    if command:
        rows.append(("rerun / resume", f"<code>{escape(command)}</code>"))
    elif cfg:
        rows.append(
            (
                "rerun / resume",
                "<code>"
                + escape(f"normnas search --study {data.name} --storage {data.storage}")
                + "</code> "
                "<small>with the config below</small>",
            )
        )
    body = _kv(rows)
    if cfg:
        body += (
            "<details><summary>run config</summary><pre>"
            + escape(json.dumps(cfg, indent=2, default=str))
            + "</pre></details>"
        )
    for note in data.notes:
        body += f'<p class="note">{escape(note)}</p>'
    return section("summary", "Summary", body)


def _budget(cfg: dict[str, Any]) -> str:
    parts = []
    if cfg.get("trials"):
        parts.append(plural(cfg["trials"], "trial"))
    if cfg.get("time"):
        parts.append(f"{cfg['time']:g}s wall time")
    return ", ".join(parts) or "none set"


# -- trajectory ------------------------------------------------------------------------------
def _trial_title(data: StudyData, r: TrialRow) -> str:
    vals = (
        ", ".join(
            f"{_name(data, o)} {_value(data, o, v)}"
            for o, v in zip(data.objectives, r.values, strict=False)
        )
        if r.values
        else (r.error or "no value")
    )
    return f"#{r.number} {r.category}: {vals}\n{r.arch}"


def _y_of(data: StudyData, r: TrialRow) -> float | None:
    if r.values:
        return r.values[0]
    if data.objectives[0] == "accuracy":
        return r.accuracy
    return None


def trajectory(data: StudyData) -> str:
    obj = data.objectives[0]
    sign = 1.0 if data.maximize[0] else -1.0
    # screened candidates have no value of the objective: the cascade section shows them
    shown = [r for r in data.rows if r.category not in ("running", "screened")]
    ys = [y for r in shown if (y := _y_of(data, r)) is not None]
    if not ys:
        return section("trajectory", "Search trajectory", "<p>No trial has a value yet.</p>")
    figs = []
    for x_name, x_of in (
        ("trial", lambda r: float(r.number)),
        ("elapsed wall time (s)", lambda r: r.end_s),
    ):
        pts = [(x_of(r), _y_of(data, r), r) for r in shown]
        xs = [p[0] for p in pts if p[0] is not None]
        if not xs:
            continue
        ax = Axes.fit(
            xs,
            ys,
            x_label=x_name,
            y_label=_name(data, obj),
            x_integer=x_name == "trial",
            y_bounds=SHARE if _is_share(data, obj) else None,
        )
        ax.frame(y_fmt="%" if _is_share(data, obj) else "g")
        best: float | None = None
        steps: list[tuple[float, float]] = []
        for x, y, r in sorted(pts, key=lambda p: (p[0] is None, p[0] or 0.0)):
            if x is None:
                continue
            if r.category == "ok" and r.values and (best is None or sign * y > sign * best):  # type: ignore[operator]
                best = y
            if best is not None:
                steps.append((x, best))
        ax.polyline(steps, PALETTE[2], "best so far", step=True, cls="best-line", width=2)
        lo = ax.y_range[0]
        for x, y, r in pts:
            if x is None:
                continue
            missing = y is None
            ax.point(
                x,
                lo if missing else y,
                colour(r.category),
                _trial_title(data, r),
                r=2.5 if missing else 3.5,
                cls="pt trial-pt",
            )
        figs.append(ax.svg("trajectory", f"best so far against {x_name}"))
    cats = sorted({r.category for r in shown})
    body = (
        "<p>Every trial as a point coloured by its status (failed trials sit on the "
        "bottom edge); the green step is the best so far.</p>"
        + legend([(c, colour(c)) for c in cats] + [("best so far", PALETTE[2])])
        + '<div class="row">'
        + "".join(figs)
        + "</div>"
    )
    return section("trajectory", "Search trajectory", body)


# -- Pareto ----------------------------------------------------------------------------------
def pareto(data: StudyData) -> str:
    if len(data.objectives) < 2:
        return ""
    pts = [r for r in data.evaluated if r.values and len(r.values) >= 2]
    if not pts:
        return section("pareto", "Pareto front", "<p>No completed trial yet.</p>")
    x_obj, y_obj = data.objectives[1], data.objectives[0]
    xs = [r.values[1] for r in pts]  # type: ignore[index]
    ys = [r.values[0] for r in pts]  # type: ignore[index]
    x_log = min(xs) > 0 and max(xs) / min(xs) > 20
    ax = Axes.fit(
        xs,
        ys,
        x_label=OBJECTIVE_LABELS.get(x_obj, x_obj) + (" (log)" if x_log else ""),
        y_label=_name(data, y_obj),
        x_log=x_log,
        width=560,
        height=340,
        y_bounds=SHARE if _is_share(data, y_obj) else None,
    )
    ax.frame(y_fmt="%" if _is_share(data, y_obj) else "g")
    front = [r for r in pts if r.number in data.front]
    front.sort(key=lambda r: r.values[1])  # type: ignore[index]
    ax.polyline(
        [(r.values[1], r.values[0]) for r in front],
        PALETTE[1],
        "Pareto front",  # type: ignore[index]
        step=True,
        cls="front-line",
    )
    for r in pts:
        on = r.number in data.front
        ax.point(
            r.values[1],
            r.values[0],
            PALETTE[1] if on else "#9ecae1",  # type: ignore[index]
            _trial_title(data, r),
            r=4.5 if on else 3,
            cls="pt front-pt" if on else "pt",
        )
    chosen = data.row(data.chosen) if data.chosen is not None else None
    if chosen is not None and chosen.values:
        ax.parts.append(
            f'<circle class="chosen" cx="{ax.x(chosen.values[1]):.1f}" '
            f'cy="{ax.y(chosen.values[0]):.1f}" r="9" fill="none" stroke="#d62728" '
            f'stroke-width="2"><title>{escape("chosen: " + _trial_title(data, chosen))}'
            "</title></circle>"
        )
    body = (
        f"<p>{len(front)} of {len(pts)} successful trials are Pareto-optimal; the red ring "
        f"is the chosen one (best {escape(y_obj)} on the front), the one retrained. Hover a "
        "point for its architecture.</p>"
        + legend([("Pareto front", PALETTE[1]), ("other trials", "#9ecae1"), ("chosen", "#d62728")])
        + ax.svg("pareto", "Pareto front")
    )
    return section("pareto", "Pareto front", body)


# -- which choices matter --------------------------------------------------------------------
def choices(data: StudyData, study: Any) -> str:
    body = f'<p class="headline">{escape(analysis.headline(data))}</p>'
    imp, note = analysis.importances(data, study)
    if imp:
        groups = analysis.grouped(imp)
        body += (
            "<h3>Parameter importances (fANOVA), grouped by kind</h3>"
            "<p>Optuna's fANOVA over the study's completed trials, for "
            f"{escape(data.objectives[0])}; the parameters of one kind (every block's "
            "norm, every placement, …) add up.</p>"
            + hbar_chart(
                [
                    (k, v, f"{k}: {100 * v:.1f}% of the explained variance")
                    for k, v in groups.items()
                ],
                "importance",
                "grouped parameter importances",
                "share of importance",
            )
            + "<details><summary>per parameter</summary>"
            + hbar_chart(
                [(k, v, f"{k}: {100 * v:.1f}%") for k, v in list(imp.items())[:25]],
                "importance-params",
                "parameter importances",
                "share of importance",
                width=520,
            )
            + "</details>"
        )
    else:
        body += f'<p class="note">{escape(note)}</p>'
    kinds = analysis.kinds_present(data)
    focus = [k for k in analysis.FOCUS_KINDS if k in kinds] or [
        k for k in ("cell op",) if k in kinds
    ]
    for kind in focus:
        stats = analysis.choice_stats(data, kind)
        if not stats.values:
            continue
        values = stats.values
        rows = [
            (analysis._label(kind, v), stats.share_top.get(v, 0.0), stats.share_all.get(v, 0.0))
            for v in values
        ]
        groups = [(analysis._label(kind, v), stats.scores.get(v, [])) for v in values]
        metric = (
            ("valid accuracy" if data.score is None else data.score)
            if any(r.accuracy is not None for r in data.evaluated)
            else _name(data, data.objectives[0])
        )
        body += (
            f'<h3>{escape(kind)}</h3><div class="row"><div>'
            f"<p>Share of the {escape(kind)} choices among the top 10% "
            f"({plural(stats.n_top, 'trial')}) against all trials</p>"
            + paired_bars(rows, f"freq freq-{kind.replace(' ', '-')}", f"{kind} among the top 10%")
            + f"</div><div><p>{escape(metric)} of the trials using each {escape(kind)} "
            f"({'on any edge' if kind == 'cell op' else 'in any block'})</p>"
            + box_plot(
                groups,
                f"dist dist-{kind.replace(' ', '-')}",
                f"{metric} per {kind}",
                metric,
                y_fmt="%" if metric == "valid accuracy" else "g",
            )
            + "</div></div>"
        )
    return section("choices", "Which choices matter", body)


# -- per trial -------------------------------------------------------------------------------
def per_trial(data: StudyData) -> str:
    curves = [r for r in data.rows if r.curve]
    body = ""
    if curves:
        ys = [v for r in curves for v in r.curve]
        xs = [float(i) for r in curves for i in range(1, len(r.curve) + 1)]
        ax = Axes.fit(
            xs, ys, x_label="epoch", y_label="valid accuracy", width=560, height=300,
            x_integer=True, y_bounds=SHARE,
        )  # fmt: skip
        ax.frame(y_fmt="%")
        for r in curves:
            on = r.number == data.chosen
            pts = [(float(i), v) for i, v in enumerate(r.curve, start=1)]
            ax.polyline(
                pts,
                PALETTE[3] if on else colour(r.category),
                _trial_title(data, r),
                cls="curve" + (" chosen-curve" if on else ""),
                width=2.5 if on else 1.2,
            )
            if len(pts) == 1:
                ax.point(*pts[0], colour(r.category), _trial_title(data, r), r=2.5)
        body += (
            "<p>Valid accuracy after each epoch (the chosen trial in red); hover a curve "
            "for its trial.</p>" + ax.svg("curves", "learning curves")
        )
    else:
        body += (
            '<p class="note">No learning curves recorded (a table or proxy evaluator).</p>'
            + cost_scatter(data)
        )
    body += trial_table(data)
    return section("trials", "Per trial", body)


def trial_table(data: StudyData) -> str:
    cols = ["#", "status", *data.objectives]
    extra = [
        c for c in ("accuracy", "params", "flops", "latency", "cost s") if c not in data.objectives
    ]
    cols += [*extra, "architecture"]
    # a judge's score is headed by its name: "accuracy" over -3.38 would read as a fraction
    head = "".join(
        f'<th data-col="{i}">{escape(_name(data, c) if c == "accuracy" else c)}</th>'
        for i, c in enumerate(cols)
    )
    body = []
    # a cascade's screened candidates are counted and compared in its own section
    for r in (r for r in data.rows if r.category != "screened"):
        metric = {
            "accuracy": r.accuracy,
            "params": r.n_params,
            "flops": r.flops,
            "latency": r.latency_ms,
            "cost s": r.cost_s,
        }
        mark = _mark(r.latency_ms, r.latency_reliable)
        cells: list[tuple[str, Any]] = [(str(r.number), r.number), (r.category, r.category)]
        for i, o in enumerate(data.objectives):
            v = r.values[i] if r.values else None
            cells.append((_value(data, o, v) + (mark if o == "latency" else ""), v))
        for c in extra:
            v = metric[c]
            cells.append(
                (_value(data, c, v) if c != "cost s" else ("–" if v is None else f"{v:.1f}"), v)
            )
            if c == "latency":
                cells[-1] = (cells[-1][0] + mark, v)
        arch = r.arch + (f" (= #{r.duplicate_of})" if r.duplicate_of is not None else "")
        cells.append((arch, arch))
        tds = "".join(
            f'<td data-v="{escape(_sort_key(v))}">{escape(text)}</td>' for text, v in cells
        )
        cls = ' class="chosen-row"' if r.number == data.chosen else ""
        body.append(f"<tr{cls}>{tds}</tr>")
    return (
        '<p><input id="trial-filter" type="search" placeholder="filter: e.g. batchnorm, ok, '
        'res" aria-label="filter trials"> <span id="trial-count"></span> '
        "<small>click a column to sort</small></p>"
        f'<div class="scroll"><table id="trial-table" class="trials"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
        + _latency_note(
            [
                (r.latency_load, r.latency_cores)
                for r in data.rows
                if _mark(r.latency_ms, r.latency_reliable)
            ]
        )
    )


def _mark(latency_ms: float | None, reliable: bool | None) -> str:
    """The mark after a latency figure measured when it could not be trusted."""
    return f" {UNRELIABLE_MARK}" if latency_ms is not None and reliable is False else ""


def _latency_note(marked: list[tuple[float | None, int | None]]) -> str:
    """The footnote under figures marked unreliable: under what load they were measured
    (`marked`: (1-minute load, cores) of each), or nothing when none is."""
    if not marked:
        return ""
    loads = [load for load, _ in marked if load is not None]
    cores = next((c for _, c in marked if c), None)
    text = latency_warning(max(loads, default=None), cores)
    return f'<p class="note latency-note">{UNRELIABLE_MARK} {escape(text)}</p>'


def _sort_key(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return repr(float(v))
    return "" if v is None else str(v)


# -- best model ------------------------------------------------------------------------------
def best_model(data: StudyData) -> str:
    best = data.row(data.chosen) if data.chosen is not None else None
    if best is None:
        return section("best", "The best model", "<p>No successful trial yet.</p>")
    body = f"<p>Trial #{best.number}: <code>{escape(best.arch)}</code></p>"
    if data.space is not None:
        figure, recipe = arch_figure(data.space, best.params)
        body += figure
        if recipe:
            body += f"<p>training recipe: <code>{escape(recipe)}</code></p>"
    final = data.attrs.get(FINAL_MODEL_ATTR)
    rows = [("", "search trial", "final model")]
    fm = final if isinstance(final, dict) else {}
    final_mark = _mark(fm.get("latency_ms"), fm.get("latency_reliable"))
    # not timed when --time had no room left: say so, never a blank that reads as "fast"
    skipped = f"not measured ({escape(str(fm['latency_skipped']))})" if fm.get(
        "latency_skipped"
    ) else ""
    test = fmt_value("accuracy", fm.get("test_accuracy")) + " test" if fm else "–"
    if data.score:  # the trial has the judge's score; the final model's test is an accuracy
        rows += [
            (data.score, _value(data, "accuracy", best.accuracy), "–"),
            ("accuracy", "–", test),
        ]
    else:
        rows.append(("accuracy", fmt_value("accuracy", best.accuracy) + " valid", test))
    rows += [
        ("parameters", fmt_value("params", best.n_params), fmt_value("params", fm.get("params"))),
        ("FLOPs (one sample)", fmt_value("flops", best.flops), fmt_value("flops", fm.get("flops"))),
        (
            "latency, batch 1 (ms)",
            _ms(best.latency_ms) + _mark(best.latency_ms, best.latency_reliable),
            skipped if skipped else _ms(fm.get("latency_ms")) + final_mark,
        ),
        (
            "latency, BN folded (ms)",
            "–",
            _ms(fm.get("latency_folded_ms")) + final_mark
            if fm.get("latency_folded_ms") is not None
            else (skipped or ("nothing to fold" if fm else "–")),
        ),
    ]
    marked = (
        [(best.latency_load, best.latency_cores)]
        if _mark(best.latency_ms, best.latency_reliable)
        else []
    )
    if final_mark:
        marked.append((_number(fm.get("latency_load")), fm.get("latency_cores")))
    body += (
        '<table class="costs">'
        + "".join(
            "<tr>"
            + "".join(
                f"<{'th' if i == 0 or k == 0 else 'td'}>{escape(c)}"
                f"</{'th' if i == 0 or k == 0 else 'td'}>"
                for k, c in enumerate(row)
            )
            + "</tr>"
            for i, row in enumerate(rows)
        )
        + "</table>"
        + _latency_note(marked)
    )
    body += "<h3>BatchNorm diagnostics of the final model</h3>" + bn_diagnostics(fm)
    return section("best", "The best model", body)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _ms(v: Any) -> str:
    return "–" if v is None else f"{float(v):.3f}"


def bn_diagnostics(fm: dict[str, Any]) -> str:
    if not fm:
        return (
            '<p class="note">No final model was trained for this study (a search with '
            "<code>--final</code>, or <code>normnas export</code>, trains and records "
            "one).</p>"
        )
    rows = fm.get("bn") or []
    if not rows:
        return '<p class="note">The final model has no BatchNorm layer.</p>'
    shares = [
        (
            r["name"],
            float(r.get("low_gamma_share") or 0.0),
            f"{r['name']}: {100 * float(r.get('low_gamma_share') or 0.0):.1f}% of "
            f"{r['channels']} channels with |γ| < 0.01",
        )
        for r in rows
    ]
    any_low = any(s for _, s, _ in shares)
    out = (
        "<p>Share of near-zero γ (|γ| &lt; 0.01: near-dead channels, as network slimming "
        "prunes) per layer"
        + ("" if any_low else ": none in any layer")
        + "</p>"
        + hbar_chart(
            shares,
            "bn-low-gamma",
            "share of near-zero gamma per BN layer",
            "share of channels",
            width=560,
        )
    )
    hists = []
    for r in rows:
        h = r.get("gamma_hist")
        if h:
            hists.append(
                histogram(
                    h["edges"],
                    h["counts"],
                    "gamma-hist",
                    f"gamma histogram of {r['name']}",
                    f"γ of {r['name']}",
                    mark=0.0,
                )
            )
    if hists:
        out += (
            '<p>γ per layer (dashed: zero)</p><div class="row small">' + "".join(hists) + "</div>"
        )
    out += (
        '<table class="bn"><thead><tr><th>layer</th><th>channels</th><th>mean |γ|</th>'
        "<th>near-zero γ</th><th>running mean (min…max)</th><th>running var (min…max)"
        "</th></tr></thead><tbody>"
    )
    for r in rows:
        out += (
            f"<tr><td>{escape(r['name'])}</td><td>{r['channels']}</td>"
            f"<td>{_num(r.get('mean_abs_gamma'))}</td>"
            f"<td>{_pct(r.get('low_gamma_share'))}</td>"
            f"<td>{_range(r.get('running_mean'))}</td><td>{_range(r.get('running_var'))}</td></tr>"
        )
    return out + "</tbody></table>"


def _num(v: Any) -> str:
    return "–" if v is None else f"{float(v):.3g}"


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _range(s: Any) -> str:
    if not s:
        return "–"
    return f"{s['mean']:.3g} ({s['min']:.3g}…{s['max']:.3g})"


def cost_scatter(data: StudyData) -> str:
    """Each trial's first objective against what it cost (simulated seconds for a table)."""
    pts = [(r.cost_s, r.values[0], r) for r in data.evaluated if r.cost_s and r.values]
    if not pts:
        return ""
    obj = data.objectives[0]
    ax = Axes.fit(
        [p[0] for p in pts], [p[1] for p in pts], x_label="cost of the trial (s)",
        y_label=_name(data, obj), width=560, height=300,
        y_bounds=SHARE if _is_share(data, obj) else None,
    )  # fmt: skip
    ax.frame(y_fmt="%" if _is_share(data, obj) else "g")
    for x, y, r in pts:
        on = r.number == data.chosen
        ax.point(x, y, PALETTE[3] if on else colour(r.category), _trial_title(data, r),
                 r=5 if on else 3)  # fmt: skip
    return (
        f"<p>{escape(_name(data, obj))} of each trial against its cost (the "
        "chosen one in red).</p>" + ax.svg("cost-scatter", "trial score against cost")
    )


# -- cascade ---------------------------------------------------------------------------------
def cascade(data: StudyData) -> str:
    """A cascade study's funnel: per stage its judge, candidates, seconds and Kendall tau
    against the stage before; the last stage's measured values against the cheap vote."""
    f = data.funnel
    if f is None:
        return ""
    rows = []
    for i, s in enumerate(f.stages):
        tau = (
            "–"
            if s.tau is None
            else f'<span class="tau" data-tau="{s.tau!r}">{s.tau:+.2f}</span> '
            f"<small>on {plural(s.pairs, 'candidate')}</small>"
        )
        rows.append(
            f"<tr><td>{i + 1}</td><td>{escape(s.judge)}</td>"
            f'<td class="judged">{s.judged}</td><td>{s.seconds:.1f}</td><td>{tau}</td></tr>'
        )
    body = (
        f"<p><code>--cascade {escape(f.spec)}</code>: the first stage judges random "
        "candidates of distinct classes, each later stage the best of those the stage before "
        "it judged; the last stage's candidates were picked one at a time from the ones the "
        "cheap stages passed on. τ is Kendall's rank correlation between a stage's scores "
        "(its judge's vote: mean rank of its scores) and the stage before it, on the "
        "candidates both judged (1: the same order, 0: unrelated).</p>"
        '<table class="funnel costs"><thead><tr><th>stage</th><th>judge</th>'
        "<th>candidates judged</th><th>seconds</th><th>τ against the stage before</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    if f.cut:
        body += (
            '<p class="note">The time budget cut a cheap stage short: it judged fewer '
            "candidates than its spec asked for.</p>"
        )
    if f.points:
        body += _cascade_scatter(data, f)
    return section("cascade", "Cascade", body)


def _cascade_scatter(data: StudyData, f: Any) -> str:
    obj = data.objectives[0]
    share = _is_share(data, obj)
    ax = Axes.fit(
        [p.vote for p in f.points], [p.value for p in f.points],
        x_label="cheap stages' vote (rank among the candidates passed on)",
        y_label=f"measured {_name(data, obj)}", width=560, height=320,
        y_bounds=SHARE if share else None,
    )  # fmt: skip
    ax.x_range = (-0.05, 1.05)  # a rank in [0, 1]: the whole range, wherever the points are
    ax.frame(y_fmt="%" if share else "g")
    for p in f.points:
        on = p.number == data.chosen
        title = (
            f"#{p.number}: vote {p.vote:.2f}, {_name(data, obj)} {_value(data, obj, p.value)}"
            f"\n{p.arch}"
        )
        ax.point(p.vote, p.value, PALETTE[3] if on else PALETTE[0], title, r=5 if on else 3.5,
                 cls="pt cascade-pt")  # fmt: skip
    tau = (
        "undefined"
        if f.tau is None
        else f'<span class="scatter-tau" data-tau="{f.tau!r}">{f.tau:+.2f}</span>'
    )
    caption = (
        f"Predicted against measured: the cheap stages' vote for each of the "
        f"{plural(len(f.points), 'candidate')} the last stage ({escape(f.stages[-1].judge)}) "
        f"judged, against its {escape(_name(data, obj))} (the best in red); Kendall τ = "
        f"{tau}."
    )
    return (
        "<figure>"
        + ax.svg("cascade-scatter", "cheap vote against measured value")
        + f"<figcaption>{caption}</figcaption></figure>"
    )
