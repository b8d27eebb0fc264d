"""`normnas status`: a study's trials by category, its running trials and their owners."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
from rich.console import Console
from rich.markup import escape

from normnas.report.formats import objective_label
from normnas.search import records as rec
from normnas.search.study import study_meta


def trial_category(r: rec.TrialRecord, owner_alive: Any = None) -> str:
    """The one word a trial is counted under: its status, 'duplicate', or its state.

    `owner_alive(trial_number) -> bool | None` tells a RUNNING trial of a dead worker.
    """
    if r.duplicate_of is not None:
        return "duplicate"
    if r.status:
        return r.status
    if r.state == optuna.trial.TrialState.PRUNED:  # only a cascade's cheap stages tell these
        return "screened"
    if r.state == optuna.trial.TrialState.RUNNING:
        if owner_alive is not None and owner_alive(r.number) is False:
            return "running (owner gone)"
        return "running"
    return r.state.name.lower()


def counts(study: optuna.Study, owner_alive: Any = None) -> dict[str, int]:
    """Trials by category, each trial counted once."""
    return dict(Counter(trial_category(r, owner_alive) for r in rec.records(study)))


def secs(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


def print_status(study: optuna.Study, url: str, owner_alive: Any = None) -> None:
    console = Console()
    c = counts(study, owner_alive)
    console.print(f"study {study.study_name} in {url}")
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "no trials")
    for line in running_lines(study, owner_alive):
        console.print(escape(line))
    front = rec.best_records(study)
    if front:
        names = study.metric_names or study_meta(study).get("config", {}).get("objectives", [])
        labels = [objective_label(study, n) for n in names]  # a judge's score named as one
        vals = ", ".join(
            f"{label.name}={label.fmt(v)}"
            for label, v in zip(labels, front[0].values or (), strict=False)
        )
        console.print(f"best #{front[0].number}: {vals}  {escape(front[0].arch or '?')}")
    path = study.user_attrs.get("model_path")
    if path:
        console.print(f"model {path}")


def running_lines(study: optuna.Study, owner_alive: Any = None) -> list[str]:
    """One line per RUNNING trial: its worker ('host pid N') and its last heartbeat.

    E.g. `running #12 on gpu-2 pid 4711, heartbeat 3s ago`; `(owner gone)` where
    `owner_alive(number)` says its worker is dead (it is re-queued by the next run).
    """
    import time

    from normnas.search.study import ATTR_HEARTBEAT, parse_worker

    now = time.time()
    out = []
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in sorted(running, key=lambda t: t.number):
        owner = parse_worker(t.user_attrs.get(rec.ATTR_WORKER))
        who = f"{owner[0]} pid {owner[1]}" if owner is not None else "no worker recorded"
        beat = t.user_attrs.get(ATTR_HEARTBEAT)
        since = beat if isinstance(beat, (int, float)) else None
        if since is None and t.datetime_start is not None:
            since = t.datetime_start.timestamp()
        line = f"running #{t.number} on {who}"
        if since is not None:
            what = "heartbeat" if isinstance(beat, (int, float)) else "started"
            line += f", {what} {secs(max(0.0, now - since))} ago"
        if owner_alive is not None and owner_alive(t.number) is False:
            line += " (owner gone)"
        out.append(line)
    return out
