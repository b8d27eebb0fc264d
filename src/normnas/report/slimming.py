"""The report's "Slimming" section: what `normnas slim` measured, when it has run.

The results file is found where the study recorded it (`slim_results`), else at
`NAME.slim/results.json` beside the storage. Two figures: test accuracy against params,
and against batch-1 latency (BN folded) as a share of the unpruned network's timed beside
it; one colour per criterion, one point per ratio, the unpruned network in black. Then the
table of every row.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from normnas.report.svg import PALETTE, Axes, legend

CRITERION_LABELS = {"bn": "BN |γ|", "l1": "filter L1 norm", "random": "random"}
SHARE = (0.0, 1.0)


def find_results(study: Any, storage: str) -> dict[str, Any] | None:
    """The study's slim results, or None when `normnas slim` has not run (or they moved)."""
    from normnas.search.study import study_file

    recorded = study.user_attrs.get("slim_results")
    places = [Path(recorded)] if isinstance(recorded, str) else []
    places.append(study_file(storage, study.study_name, ".slim") / "results.json")
    for path in places:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("unpruned") and data.get("rows"):
            return data
    return None


def slimming(results: dict[str, Any] | None) -> str:
    """The section's HTML ('' without results)."""
    if not results:
        return ""
    base = results["unpruned"]
    rows = [r for r in results["rows"] if r.get("test_accuracy") is not None]
    criteria = sorted({r["criterion"] for r in rows}, key=lambda c: list(CRITERION_LABELS).index(c)
                      if c in CRITERION_LABELS else 9)  # fmt: skip
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(criteria)}
    s = results.get("settings", {})
    intro = (
        f"<p>The best network trained {s.get('epochs')} epochs with an L1 penalty of "
        f"{s.get('sparsity')} on its BatchNorm scales, pruned at each ratio (share of the "
        f"channels removed), then fine-tuned {s.get('finetune_epochs')} epochs; the unpruned "
        "network had the same epochs. Latency: batch 1, BN folded, timed alternately with "
        "the unpruned network (speed-up from one run).</p>"
    )
    figs = [
        _figure(base, rows, colours, "params", "parameters", "slim-params"),
        _figure(
            base,
            rows,
            colours,
            "latency",
            "latency / unpruned latency (timed together)",
            "slim-latency",
        ),
    ]
    items = [("unpruned", "#000")] + [(CRITERION_LABELS.get(c, c), colours[c]) for c in criteria]
    return (
        '<section id="slimming"><h2>Slimming</h2>'
        + intro
        + legend(items)
        + '<div class="row">'
        + "".join(figs)
        + "</div>"
        + _table(base, rows)
        + "</section>"
    )


def _figure(
    base: dict[str, Any],
    rows: list[dict[str, Any]],
    colours: dict[str, str],
    key: str,
    label: str,
    cls: str,
) -> str:
    """Test accuracy against `key` (params, or latency as a share of the unpruned network's
    timed beside it); each criterion's points joined in ratio order from the unpruned one."""

    def x_of(r: dict[str, Any]) -> float | None:
        if key != "latency":
            return r.get(key)
        ms, base_ms = r.get("latency_ms"), r.get("latency_unpruned_ms")
        return ms / base_ms if ms and base_ms else None

    base_x = 1.0 if key == "latency" else float(base[key])
    pts = [(x, r["test_accuracy"], r) for r in rows if (x := x_of(r)) is not None]
    xs = [p[0] for p in pts] + [base_x]
    ys = [p[1] for p in pts] + [base["test_accuracy"]]
    ax = Axes.fit(xs, ys, y_bounds=SHARE, x_label=label, y_label="test accuracy", width=440,
                  height=280)  # fmt: skip
    ax.frame(y_fmt="%")
    for c in colours:
        line = [(x, y) for x, y, r in sorted(pts, key=lambda p: p[2]["ratio"])
                if r["criterion"] == c]  # fmt: skip
        ax.polyline([(base_x, base["test_accuracy"]), *line], colours[c],
                    title=CRITERION_LABELS.get(c, c))  # fmt: skip
    for x, y, r in pts:
        ax.point(x, y, colours[r["criterion"]], _title(r), r=4)
    ax.point(base_x, base["test_accuracy"], "#000", "unpruned: " + _title(base), r=5)
    return ax.svg(cls, f"test accuracy against {label}")


def _title(r: dict[str, Any]) -> str:
    return (
        f"{r.get('criterion')} ratio {r.get('ratio', 0):g}: {r.get('params', 0):,} params, "
        f"test {100 * r['test_accuracy']:.2f}%"
    )


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _table(base: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    head = ("criterion", "ratio", "params", "FLOPs", "latency", "speed-up", "valid", "test")
    out = ['<table class="costs"><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    cells = [
        ("unpruned", "0", f"{base['params']:,}", f"{base['flops']:,}", "", "",
         _pct(base.get("valid_accuracy")), _pct(base.get("test_accuracy"))),
    ]  # fmt: skip
    for r in rows:
        speed = r.get("speedup")
        cells.append((
            CRITERION_LABELS.get(r["criterion"], r["criterion"]), f"{r['ratio']:g}",
            f"{r['params']:,} ({100 * r.get('params_share', 1):.0f}%)",
            f"{r['flops']:,} ({100 * r.get('flops_share', 1):.0f}%)",
            f"{r['latency_ms']:.3f} ms" if r.get("latency_ms") else "–",
            f"{speed:.2f}×" if speed else "–", _pct(r.get("valid_accuracy")),
            _pct(r.get("test_accuracy")),
        ))  # fmt: skip
    for c in cells:
        out.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in c) + "</tr>")
    return "".join(out) + "</table>"
