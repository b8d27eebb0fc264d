"""Small SVG charts drawn in Python: axes, points, steps, boxes, bars, histograms.

Inline SVG needs no script and no network, so a report opens anywhere, prints, and its
figures can be checked in the page's DOM. Every mark carries a `<title>`: the browser
shows it on hover. Coordinates are data values mapped by `Axes`; text is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# one colour per trial status (and a fallback), chosen to stay apart for colour-blind readers
STATUS_COLOURS: dict[str, str] = {
    "ok": "#1f77b4",
    "pruned": "#9467bd",
    "timeout": "#ff7f0e",
    "failed": "#d62728",
    "diverged": "#8c564b",
    "infeasible": "#7f7f7f",
    "duplicate": "#bcbd22",
    "interrupted": "#e377c2",
}
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "#17becf")


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About `n` round tick values covering [lo, hi] (whole numbers only with `integer`)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    if integer:
        raw = max(raw, 1.0)
    mag = 10 ** math.floor(math.log10(raw))
    # a step of 2.5 is round for reals but puts whole-number axes (trials) at 2.5, 7.5
    steps = (1, 2, 5, 10) if integer and mag < 10 else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in steps if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def fmt_tick(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


SHARE = (0.0, 1.0)  # the bounds of a fraction (accuracy): its axis never goes past them


def _percent_places(ticks: Sequence[float]) -> int:
    """Decimals that write every tick as a percentage exactly: a step of 0.5% needs one
    (98.5%, 99.5%), where none would label two ticks alike."""
    return next(
        (d for d in range(4) if all(abs(round(100 * t, d) - 100 * t) < 1e-6 for t in ticks)), 4
    )


def _span(
    values: Sequence[float], pad: float = 0.05, bounds: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The values' range with `pad` of it added on each side, kept within `bounds` where the
    values are (an accuracy axis ends at 100%, however close to it the best trial is)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return (0.0, 1.0) if bounds is None else bounds
    lo, hi = min(vals), max(vals)
    d = (hi - lo) * pad if hi > lo else (abs(lo) * 0.05 or 0.5)
    lo, hi = lo - d, hi + d
    if bounds is not None and bounds[0] <= min(vals) and max(vals) <= bounds[1]:
        # a score that is not a fraction (a proxy's, under `accuracy`) keeps its own range
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return lo, hi


@dataclass
class Axes:
    """A plot area: data ranges mapped onto a width x height SVG with margins for labels."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int = 460
    height: int = 280
    left: int = 56
    right: int = 12
    top: int = 14
    bottom: int = 42
    x_label: str = ""
    y_label: str = ""
    x_log: bool = False
    x_integer: bool = False  # whole-number x ticks (trial numbers, epochs)
    parts: list[str] = field(default_factory=list)

    @classmethod
    def fit(
        cls,
        xs: Sequence[float],
        ys: Sequence[float],
        y_bounds: tuple[float, float] | None = None,
        **kw: object,
    ) -> Axes:
        """Axes around the points; `y_bounds` (e.g. SHARE for accuracy) the y axis stays in."""
        x_log = bool(kw.get("x_log"))
        x_vals = [math.log10(x) for x in xs if x and x > 0] if x_log else list(xs)
        return cls(_span(x_vals), _span(ys, bounds=y_bounds), **kw)  # type: ignore[arg-type]

    def x(self, v: float) -> float:
        if self.x_log:
            v = math.log10(v) if v > 0 else self.x_range[0]
        lo, hi = self.x_range
        return self.left + (v - lo) / (hi - lo) * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        lo, hi = self.y_range
        return (
            self.height
            - self.bottom
            - (v - lo) / (hi - lo) * (self.height - self.top - self.bottom)
        )

    def frame(self, y_fmt: str = "g", x_ticks: bool = True) -> None:
        """Axes lines, ticks, grid and labels (`x_ticks=False`: the caller labels x)."""
        p = self.parts
        x0, x1 = self.left, self.width - self.right
        y0, y1 = self.height - self.bottom, self.top
        p.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>')
        p.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>')
        y_ticks = nice_ticks(*self.y_range)
        places = _percent_places(y_ticks)
        for t in y_ticks:
            yy = self.y(t)
            label = f"{100 * t:.{places}f}%" if y_fmt == "%" else fmt_tick(t)
            p.append(f'<line class="grid" x1="{x0}" y1="{yy:.1f}" x2="{x1}" y2="{yy:.1f}"/>')
            p.append(
                f'<text class="tick" x="{x0 - 4}" y="{yy + 3:.1f}" text-anchor="end">{label}</text>'
            )
        for t in nice_ticks(*self.x_range, integer=self.x_integer) if x_ticks else []:
            xx = self.left + (t - self.x_range[0]) / (self.x_range[1] - self.x_range[0]) * (x1 - x0)
            label = fmt_tick(10**t) if self.x_log else fmt_tick(t)
            p.append(
                f'<text class="tick" x="{xx:.1f}" y="{y0 + 14}" text-anchor="middle">{label}</text>'
            )
        if self.x_label:
            p.append(
                f'<text class="label" x="{(x0 + x1) / 2:.0f}" y="{self.height - 6}" '
                f'text-anchor="middle">{escape(self.x_label)}</text>'
            )
        if self.y_label:
            p.append(
                f'<text class="label" transform="translate(12,{(y0 + y1) / 2:.0f}) '
                f'rotate(-90)" text-anchor="middle">{escape(self.y_label)}</text>'
            )

    def point(
        self, x: float, y: float, fill: str, title: str, r: float = 3.5, cls: str = "pt"
    ) -> None:
        self.parts.append(
            f'<circle class="{cls}" cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="{r}" '
            f'fill="{fill}"><title>{escape(title)}</title></circle>'
        )

    def polyline(
        self,
        pts: Sequence[tuple[float, float]],
        stroke: str,
        title: str = "",
        step: bool = False,
        cls: str = "line",
        width: float = 1.6,
    ) -> None:
        if not pts:
            return
        coords: list[tuple[float, float]] = []
        for i, (x, y) in enumerate(pts):
            if step and i:
                coords.append((self.x(x), self.y(pts[i - 1][1])))
            coords.append((self.x(x), self.y(y)))
        d = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
        t = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(
            f'<polyline class="{cls}" points="{d}" fill="none" stroke="{stroke}" '
            f'stroke-width="{width}">{t}</polyline>'
        )

    def svg(self, cls: str, label: str) -> str:
        return (
            f'<svg class="fig {cls}" role="img" aria-label="{escape(label)}" '
            f'viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
            f'height="{self.height}" xmlns="http://www.w3.org/2000/svg">'
            + "".join(self.parts)
            + "</svg>"
        )


def legend(items: Sequence[tuple[str, str]]) -> str:
    """An HTML legend: coloured dots with their labels."""
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{escape(name)}</span>' for name, c in items)
        + "</div>"
    )


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    v = sorted(values)

    def q(p: float) -> float:
        k = (len(v) - 1) * p
        f = math.floor(k)
        c = min(f + 1, len(v) - 1)
        return v[f] + (v[c] - v[f]) * (k - f)

    return q(0.25), q(0.5), q(0.75)


def box_plot(
    groups: Sequence[tuple[str, Sequence[float]]],
    cls: str,
    label: str,
    y_label: str,
    y_fmt: str = "%",
) -> str:
    """One box (quartiles, whiskers at min/max) per group, with every value as a dot."""
    all_vals = [v for _, vs in groups for v in vs]
    width = max(220, 70 + 92 * len(groups))
    bounds = SHARE if y_fmt == "%" else None
    ax = Axes(
        (0, len(groups)), _span(all_vals, bounds=bounds), width=width, height=240, y_label=y_label
    )
    ax.frame(y_fmt=y_fmt, x_ticks=False)
    for i, (name, vals) in enumerate(groups):
        cx = ax.x(i + 0.5)
        ax.parts.append(
            f'<text class="tick" x="{cx:.1f}" y="{ax.height - ax.bottom + 14}" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
        if not vals:
            continue
        q1, med, q3 = quartiles(vals)
        lo, hi = min(vals), max(vals)
        c = PALETTE[i % len(PALETTE)]
        title = (
            f"{name}: n={len(vals)}, median {_pct(med, y_fmt)}, "
            f"IQR {_pct(q1, y_fmt)}–{_pct(q3, y_fmt)}"
        )
        ax.parts.append(
            f'<g class="box"><title>{escape(title)}</title>'
            f'<line x1="{cx:.1f}" y1="{ax.y(lo):.1f}" x2="{cx:.1f}" y2="{ax.y(hi):.1f}" '
            f'stroke="{c}"/>'
            f'<rect x="{cx - 14:.1f}" y="{ax.y(q3):.1f}" width="28" '
            f'height="{max(ax.y(q1) - ax.y(q3), 1):.1f}" fill="{c}" fill-opacity="0.25" '
            f'stroke="{c}"/>'
            f'<line x1="{cx - 14:.1f}" y1="{ax.y(med):.1f}" x2="{cx + 14:.1f}" '
            f'y2="{ax.y(med):.1f}" stroke="{c}" stroke-width="2"/></g>'
        )
        for k, v in enumerate(vals):
            jitter = ((k * 7919) % 17 - 8) / 2.0  # deterministic spread, no overlap stacks
            ax.parts.append(
                f'<circle class="pt" cx="{cx + jitter:.1f}" cy="{ax.y(v):.1f}" r="2" '
                f'fill="{c}"><title>{escape(f"{name}: {_pct(v, y_fmt)}")}</title></circle>'
            )
    return ax.svg(cls, label)


def _pct(v: float, y_fmt: str) -> str:
    return f"{100 * v:.2f}%" if y_fmt == "%" else f"{v:.4g}"


def hbar_chart(
    rows: Sequence[tuple[str, float, str]],
    cls: str,
    label: str,
    x_label: str,
    pairs: Sequence[tuple[str, float, float]] | None = None,
    width: int = 460,
) -> str:
    """Horizontal bars: (name, value in [0, 1], title) rows, values as shares."""
    row_h = 22
    left = 150
    height = 30 + row_h * len(rows)
    top = 6
    usable = width - left - 50
    hi = max([v for _, v, _ in rows] + [1e-12])
    parts = []
    for i, (name, v, title) in enumerate(rows):
        y = top + i * row_h
        w = usable * v / hi
        parts.append(
            f'<g class="bar"><title>{escape(title)}</title>'
            f'<text class="tick" x="{left - 6}" y="{y + 14}" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="{row_h - 8}" '
            f'fill="{PALETTE[0]}"/>'
            f'<text class="tick" x="{left + w + 4:.1f}" y="{y + 14}">{100 * v:.0f}%</text></g>'
        )
    parts.append(
        f'<text class="label" x="{left + usable / 2:.0f}" y="{height - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    return (
        f'<svg class="fig {cls}" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(parts) + "</svg>"
    )


def paired_bars(
    rows: Sequence[tuple[str, float, float]],
    cls: str,
    label: str,
    names: tuple[str, str] = ("top 10%", "all trials"),
) -> str:
    """Two bars per row (e.g. share among the top 10% and among all trials)."""
    row_h = 30
    left, width = 130, 460
    usable = width - left - 50
    height = 36 + row_h * len(rows)
    parts = []
    for i, (name, a, b) in enumerate(rows):
        y = 6 + i * row_h
        parts.append(
            f'<g class="bar"><title>{escape(f"{name}: {names[0]} {100 * a:.0f}%, {names[1]} {100 * b:.0f}%")}</title>'  # noqa: E501
            f'<text class="tick" x="{left - 6}" y="{y + 16}" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect x="{left}" y="{y + 2}" width="{max(usable * a, 0.5):.1f}" height="11" '
            f'fill="{PALETTE[1]}"/>'
            f'<rect x="{left}" y="{y + 14}" width="{max(usable * b, 0.5):.1f}" height="11" '
            f'fill="{PALETTE[0]}"/>'
            f'<text class="tick" x="{left + usable * max(a, b) + 4:.1f}" y="{y + 16}">'
            f"{100 * a:.0f}% / {100 * b:.0f}%</text></g>"
        )
    parts.append(
        f'<g transform="translate({left},{height - 12})">'
        f'<rect width="10" height="8" fill="{PALETTE[1]}"/>'
        f'<text class="tick" x="14" y="8">{escape(names[0])}</text>'
        f'<rect x="90" width="10" height="8" fill="{PALETTE[0]}"/>'
        f'<text class="tick" x="104" y="8">{escape(names[1])}</text></g>'
    )
    return (
        f'<svg class="fig {cls}" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(parts) + "</svg>"
    )


def histogram(
    edges: Sequence[float],
    counts: Sequence[int],
    cls: str,
    label: str,
    title: str,
    width: int = 220,
    height: int = 120,
    mark: float | None = None,
) -> str:
    """Bars of a histogram given its bin edges; `mark` draws a dashed vertical line."""
    ax = Axes(
        (edges[0], edges[-1]),
        (0, max([*counts, 1]) * 1.05),
        width=width,
        height=height,
        left=34,
        bottom=28,
        top=18,
    )
    ax.frame()
    ax.parts.append(f'<text class="tick" x="{ax.left}" y="11">{escape(title)}</text>')
    for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=False):
        x0, x1 = ax.x(lo), ax.x(hi)
        y = ax.y(n)
        ax.parts.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
            f'height="{ax.y(0) - y:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(f'{lo:.3g}–{hi:.3g}: {n}')}</title></rect>"
        )
    if mark is not None and edges[0] <= mark <= edges[-1]:
        xm = ax.x(mark)
        ax.parts.append(
            f'<line x1="{xm:.1f}" y1="{ax.top}" x2="{xm:.1f}" y2="{ax.y(0):.1f}" '
            'stroke="#d62728" stroke-dasharray="3,2"/>'
        )
    return ax.svg(cls, label)
