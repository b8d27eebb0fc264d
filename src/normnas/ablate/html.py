"""The HTML report of an ablation: one self-contained file (inline CSS and SVG, no script).

Per factor, the distribution of the runs' accuracies per level (a box with every run as a
dot) and its table; per interaction, an interaction plot (mean accuracy with its 95%
interval at each level of one factor, one line per level of the other) and its table;
then the plain-language summary. Figures use the study report's SVG helpers and style.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

from normnas.ablate.stats import AblationStats, Obs, accuracy_by_seed, runs_at, t_interval
from normnas.ablate.summary import interaction_table, level_table, sentences
from normnas.report.svg import PALETTE, Axes, box_plot, legend


def _span(values: list[float]) -> tuple[float, float]:
    """The y range of a plot: the values with a 5% margin (a unit when they are one)."""
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 if hi > lo else 1.0
    return lo - pad, hi + pad


def _factor(stats: AblationStats, name: str) -> Any:
    return stats.design.factors[stats.design.names.index(name)]


def level_figure(stats: AblationStats, obs: list[Obs], name: str) -> str:
    f = _factor(stats, name)
    groups = [
        (f.label(level), [v / 100 for v in accuracy_by_seed(runs_at(obs, stats.design,
                                                                    {name: level})).values()])
        for level in f.levels
    ]  # fmt: skip
    svg = box_plot(groups, f"levels-{name}", f"accuracy per {name} level", "valid accuracy")
    # the boxes stand at 0.5, 1.5, ...: the numeric x ticks mean nothing here
    return re.sub(r'<text class="tick"[^>]*text-anchor="middle">[-0-9.]+</text>', "", svg)


def interaction_figure(stats: AblationStats, obs: list[Obs], a: str, b: str) -> str:
    """Mean accuracy (± 95% interval) at each level of `b`, one line per level of `a`."""
    fa, fb = _factor(stats, a), _factor(stats, b)
    lines = []
    values: list[float] = []
    for la in fa.levels:
        pts = []
        for i, lb in enumerate(fb.levels):
            iv = t_interval(accuracy_by_seed(runs_at(obs, stats.design, {a: la, b: lb})).values())
            if iv is not None:
                pts.append((i, iv))
                values += [iv.mean] + ([iv.low, iv.high] if iv.half is not None else [])
        lines.append((la, pts))
    width = max(320, 120 + 110 * len(fb.levels))
    ax = Axes((-0.5, len(fb.levels) - 0.5), _span(values), width=width, height=260,
              y_label="valid accuracy (points)")  # fmt: skip
    ax.frame(y_fmt="g")
    # categorical x: drop the numeric x tick labels, write the level names instead
    numeric_x = ('<text class="tick"', 'text-anchor="middle"')
    ax.parts = [p for p in ax.parts if not (p.startswith(numeric_x[0]) and numeric_x[1] in p)]
    for i, lb in enumerate(fb.levels):
        ax.parts.append(
            f'<text class="tick" x="{ax.x(i):.1f}" y="{ax.height - ax.bottom + 14}" '
            f'text-anchor="middle">{escape(fb.label(lb))}</text>'
        )
    for k, (la, pts) in enumerate(lines):
        c = PALETTE[k % len(PALETTE)]
        dx = (k - (len(lines) - 1) / 2) * 0.04  # a small offset keeps the bars apart
        ax.polyline([(i + dx, iv.mean) for i, iv in pts], c, fa.label(la))
        for i, iv in pts:
            title = f"{fa.label(la)} at {fb.label(fb.levels[i])}: {iv.text()} points"
            if iv.half is not None:
                ax.parts.append(
                    f'<line x1="{ax.x(i + dx):.1f}" y1="{ax.y(iv.low):.1f}" '
                    f'x2="{ax.x(i + dx):.1f}" y2="{ax.y(iv.high):.1f}" stroke="{c}"/>'
                )
            ax.point(i + dx, iv.mean, c, title)
    key = legend([(fa.label(la), PALETTE[k % len(PALETTE)]) for k, (la, _) in enumerate(lines)])
    return ax.svg(f"interaction-{a}-{b}", f"{a} by {b} interaction plot") + key


def build_report(outcome: Any, obs: list[Obs]) -> str:
    from normnas.report.html_page import CSS

    stats: AblationStats = outcome.stats
    design = stats.design
    meta = outcome.study.user_attrs.get("normnas_ablate", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>ablation {escape(outcome.study.study_name)}</title><style>{CSS}</style>",
        "</head><body><header>",
        f"<h1>Ablation {escape(outcome.study.study_name)}</h1>",
        f"<p>{escape(design.describe())}; {len(outcome.seeds)} seeds; "
        f"{stats.n_runs} of {stats.n_expected} runs in the study</p>",
        "</header><main>",
        f"<p>Command: <code>{escape(meta.get('command') or '')}</code></p>",
        "<section><h2>Summary</h2><p class='note'>95% Student-t intervals over seeds; "
        "differences are paired by seed; accuracy in points. A difference is claimed only "
        "when its interval excludes 0.</p><ul>",
        *(f"<li>{escape(s)}</li>" for s in sentences(stats)),
        "</ul></section><section><h2>Per level (others at baseline)</h2><div class='row'>",
        *(level_figure(stats, obs, f.name) for f in design.factors),
        f"</div><pre>{escape(level_table(stats))}</pre></section>",
    ]
    if stats.interactions:
        parts.append("<section><h2>Interactions</h2><div class='row'>")
        parts += [f"<div>{interaction_figure(stats, obs, a, b)}</div>"
                  for a, b in stats.interactions]  # fmt: skip
        parts.append(f"</div><pre>{escape(interaction_table(stats))}</pre></section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def write_report(outcome: Any, path: str | Path) -> Path:
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(outcome, outcome.obs), encoding="utf-8")
    return out
