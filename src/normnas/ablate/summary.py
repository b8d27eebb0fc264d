"""Plain-language sentences and text tables of an ablation's statistics.

A sentence claims a difference only when its 95% interval excludes 0 ("GroupNorm beats
BatchNorm by 2.1 ± 0.8 points"); otherwise it says no difference was detected, with the
interval, so the reader sees how large a difference could still hide in it.
"""

from __future__ import annotations

from typing import Any

from normnas.ablate.factors import Factor
from normnas.ablate.stats import AblationStats, Interval, LevelStats


def _signed(x: float) -> str:
    return f"{round(x, 1) + 0.0:+.1f}"  # + 0.0: never '-0.0'


def _sentence(text: str) -> str:
    """Capitalized, unless it starts with an identifier such as conv_act_norm."""
    if not text or "_" in text.split(" ", 1)[0]:
        return text
    return text[0].upper() + text[1:]


def _factor(stats: AblationStats, name: str) -> Factor:
    return stats.design.factors[stats.design.names.index(name)]


def compare(better: str, worse: str, diff: Interval | None, what: str = "") -> str:
    """'A beats B by d ± h points' / 'A trails B by …' / 'A and B do not differ detectably'."""
    where = f"{what} " if what else ""
    if diff is None:
        return f"{where}{better} vs {worse}: no seed where both ran to the end"
    if diff.half is None:
        return f"{where}{better} vs {worse}: {_signed(diff.mean)} points, one seed (no interval)"
    n = f"{diff.n} paired seeds"
    if diff.excludes_zero:
        verb = "beats" if diff.mean > 0 else "trails"
        size = f"{abs(diff.mean):.1f} ± {diff.half:.1f}"
        return f"{where}{better} {verb} {worse} by {size} points ({n})"
    return (
        f"{where}{better} and {worse} do not differ detectably "
        f"({_signed(diff.mean)} ± {diff.half:.1f} points, {n})"
    )


def _diverged(row: LevelStats) -> str:
    out = f"; {row.diverged} of {row.runs} runs diverged" if row.diverged else ""
    if row.failed:  # an error or a cut: see the trial's `error` (normnas status, the report)
        out += f"; {row.failed} of {row.runs} runs failed"
    return out


def level_sentences(stats: AblationStats) -> list[str]:
    out = []
    for name, rows in stats.levels.items():
        f = _factor(stats, name)
        base = f.label(f.baseline)
        for row in rows:
            if row.level == f.baseline:
                if row.diverged:
                    out.append(f"The baseline {base}{_diverged(row).replace(';', ':')}.")
                continue
            label = f.label(row.level)
            if row.runs and row.diverged == row.runs:
                out.append(f"{label} diverged in all {row.runs} runs.")
                continue
            out.append(_sentence(compare(label, base, row.vs_baseline)) + _diverged(row) + ".")
    return out


def interaction_sentences(stats: AblationStats) -> list[str]:
    out = []
    for (a, b), rows in stats.interactions.items():
        fa, fb = _factor(stats, a), _factor(stats, b)
        for la in fa.levels:
            if la == fa.baseline:
                continue
            mine = [r for r in rows if r.level == la]
            parts = []
            for r in mine:
                at = fb.label(r.at)
                if r.effect is None:
                    parts.append(f"at {at} no paired runs")
                elif r.effect.half is not None and r.effect.excludes_zero:
                    verb = "beats" if r.effect.mean > 0 else "trails"
                    parts.append(
                        f"at {at} {fa.label(la)} {verb} {fa.label(fa.baseline)} by "
                        f"{abs(r.effect.mean):.1f} ± {r.effect.half:.1f} points"
                    )
                else:
                    parts.append(f"at {at} no detectable difference ({_iv(r.effect)})")
            pair = f"{fa.label(la)} vs {fa.label(fa.baseline)}"
            out.append(_sentence(f"{pair}: " + "; ".join(parts)) + ".")
            changed = [r for r in mine if r.contrast is not None and r.contrast.excludes_zero]
            for r in changed:
                out.append(
                    f"The {fa.label(la)} − {fa.label(fa.baseline)} gap changes from "
                    f"{fb.label(fb.baseline)} to {fb.label(r.at)} by {_signed(r.contrast.mean)} ± "  # type: ignore[union-attr]
                    f"{r.contrast.half:.1f} points (interaction, {r.contrast.n} seeds)."  # type: ignore[union-attr]
                )
            if not changed and any(r.contrast is not None and r.contrast.half for r in mine):
                out.append(
                    f"No detectable {fa.name} × {fb.name} interaction for {fa.label(la)}: "
                    "the change of its gap across levels is within its intervals."
                )
    return out


def _iv(iv: Interval | None) -> str:
    if iv is None:
        return "no pairs"
    if iv.half is None:
        return f"{_signed(iv.mean)} points, one seed"
    return f"{_signed(iv.mean)} ± {iv.half:.1f} points"


def stable_lr_sentence(stats: AblationStats) -> list[str]:
    if not stats.stable_lr:
        return []
    if list(stats.stable_lr) == ["all"]:
        return [f"Largest lr with no diverged run: {_lr(stats.stable_lr['all'])}."]
    f = _factor(stats, "norm")
    parts = [f"{f.label(n)} {_lr(v)}" for n, v in stats.stable_lr.items()]
    return ["Largest lr with no diverged run, per norm: " + ", ".join(parts) + "."]


def _lr(value: Any) -> str:
    return "none (every lr diverged)" if value == "none" else f"{value:g}"


def sentences(stats: AblationStats) -> list[str]:
    """The summary: per-level comparisons, interactions, the largest stable lr."""
    out = level_sentences(stats) + interaction_sentences(stats) + stable_lr_sentence(stats)
    if all(len(f.levels) == 1 for f in stats.design.factors):
        out.append("Nothing to compare: every factor has a single level.")
    if stats.n_expected and stats.n_runs < stats.n_expected:
        out.append(
            f"Incomplete: {stats.n_runs} of {stats.n_expected} runs are in the study "
            "(rerun the same command to finish the rest)."
        )
    return out


def level_table(stats: AblationStats) -> str:
    """One block per factor: level, runs, diverged, accuracy, paired difference, s/epoch."""
    lines = []
    for name, rows in stats.levels.items():
        f = _factor(stats, name)
        lines.append(f"{name} (baseline {f.label(f.baseline)}; others at baseline)")
        lines.append(
            f"  {'level':<22} {'runs':>4} {'div':>3}  {'accuracy %':<18} "
            f"{'vs baseline (paired)':<22} {'s/epoch':>7}"
        )
        for r in rows:
            acc = r.accuracy.text() if r.accuracy else "-"
            vs = "baseline" if r.level == f.baseline else _iv(r.vs_baseline)
            sec = f"{r.epoch_s.mean:.2f}" if r.epoch_s else "-"
            lines.append(
                f"  {f.label(r.level):<22} {r.runs:>4} {r.diverged:>3}  {acc:<18} {vs:<22} "
                f"{sec:>7}"
            )
    return "\n".join(lines)


def interaction_table(stats: AblationStats) -> str:
    lines = []
    for (a, b), rows in stats.interactions.items():
        fa, fb = _factor(stats, a), _factor(stats, b)
        lines.append(f"{a} × {b}: effect of {a} vs {fa.label(fa.baseline)} at each {b}")
        for r in rows:
            contrast = "" if r.contrast is None else f"  change vs {fb.label(fb.baseline)}: "
            contrast += "" if r.contrast is None else _iv(r.contrast)
            lines.append(
                f"  {fa.label(r.level):<14} at {fb.label(r.at):<20} {_iv(r.effect):<24}{contrast}"
            )
    return "\n".join(lines)
