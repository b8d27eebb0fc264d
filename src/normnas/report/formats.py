"""How a figure is written in the terminal's output (the leaderboard, `status`, `best`)."""

from __future__ import annotations

from typing import Any

from normnas.text import plural
from normnas.train.cost import MAX_ROUND_SPREAD

MISSING = "-"
UNRELIABLE_MARK = "!"  # after a latency figure measured on a busy machine


def fmt_acc(value: float) -> str:
    """A fraction as a percentage: 0.9583 -> 95.83%."""
    return f"{100 * value:.2f}%"


def fmt_count(value: float) -> str:
    """Parameters, FLOPs: 142,100 -> 142.1k, 3,400,000 -> 3.40M."""
    return f"{value / 1e3:,.1f}k" if value < 1e6 else f"{value / 1e6:,.2f}M"


def fmt_ms(value: float) -> str:
    return f"{value:.2f}"


def fmt(value: Any, kind: str) -> str:
    """`value` as a table cell of `kind` "acc", "int" (a count) or "ms"; "-" when None."""
    if value is None:
        return MISSING
    if kind == "acc":
        return fmt_acc(value)
    if kind == "int":
        return fmt_count(value)
    return fmt_ms(value)


def fmt_metric(name: str, value: Any) -> str:
    """A metric or objective by name: accuracy as %, counts as k/M, latency in ms; the
    metrics of a custom evaluate function as 4 significant digits."""
    if value is None:
        return MISSING
    if name == "accuracy":
        return fmt_acc(value)
    if name in ("params", "flops", "macs"):
        return fmt_count(value)
    if name in ("latency", "latency_ms"):
        return fmt_ms(value) + " ms"
    return f"{value:.4g}"


def latency_warning(load: float | None, cores: int | None, threads: int = 1) -> str:
    """Why a latency figure is marked unreliable, in one line (see
    `normnas.train.cost.latency_reliable`): the load, or else its disagreeing rounds."""
    if load is not None and cores is not None and load > cores - threads:
        return f"latency measured under load {load:.1f} on {plural(cores, 'core')}: unreliable"
    return f"latency unreliable: its timing rounds differed by more than {MAX_ROUND_SPREAD:.0%}"
