"""How a search shows its progress: a rich bar on a terminal (trials done, best so far, time
left), one plain line per finished trial elsewhere. Displays of `search.events.TrialEvent`."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from normnas.report.formats import Label, objective_label
from normnas.search.records import parse_objective
from normnas.text import plural

if TYPE_CHECKING:
    from normnas.search.budget import Budget
    from normnas.search.events import TrialEvent


class _WallBar(BarColumn):
    """A bar that fills with the elapsed time itself (redrawn every refresh, not per trial)."""

    def render(self, task: Task) -> object:
        if task.total is not None and task.elapsed is not None:
            task.completed = min(task.elapsed, task.total)
        return super().render(task)


class _TimeLeft(ProgressColumn):
    """Seconds left of a wall-time budget, counted down at every refresh."""

    def __init__(self, wall_s: float) -> None:
        super().__init__()
        self.wall_s = wall_s

    def render(self, task: Task) -> Text:
        left = max(0.0, self.wall_s - (task.elapsed or 0.0))
        return Text(f"left {left:.0f}s")


class RichProgress:
    """Progress over the tightest budget known up front (trials, else wall time); `judge`
    names the evaluator, so a judge's score is shown as one (see `formats.objective_label`)."""

    def __init__(
        self, budget: Budget, objectives: tuple[str, ...], judge: str | None = None
    ) -> None:
        self.budget = budget
        self.objective = objectives[0]
        self.label = objective_label(judge, self.objective)
        self.sign = 1.0 if parse_objective(self.objective)[1] == "maximize" else -1.0
        self.best: float | None = None
        by_time = budget.trials is None and budget.wall_s is not None
        # a score is named (a bare number could pass for anything); a % is an accuracy
        named = f"{self.label.name} " if self.label.is_score else ""
        self.progress = Progress(
            TextColumn("[bold]search"),
            _WallBar() if by_time else BarColumn(),
            TextColumn("{task.fields[done]}"),
            TextColumn("best " + named + "{task.fields[best]}"),
            TimeElapsedColumn(),
            _TimeLeft(budget.wall_s)
            if budget.wall_s is not None
            else TextColumn("left {task.fields[left]}"),
            transient=False,
        )
        total = budget.trials if budget.trials is not None else budget.wall_s
        self.task = self.progress.add_task("search", total=total, done="", best="-", left="-")
        self.progress.start()

    def update(self, event: TrialEvent) -> None:
        if event.values and event.duplicate_of is None:
            value = event.values[0]
            if self.best is None or self.sign * value > self.sign * self.best:
                self.best = value
        b = self.budget
        done = (
            f"{event.n_evaluated}/{plural(b.trials, 'trial')}"
            if b.trials
            else plural(event.n_evaluated, "trial")
        )
        left = "-"
        if b.wall_s is not None:
            left = f"{max(0.0, b.wall_s - event.elapsed_s):.0f}s"
        elif b.trials and event.n_evaluated:
            per = event.elapsed_s / max(event.n_evaluated, 1)
            left = f"~{per * max(b.trials - event.n_evaluated, 0):.0f}s"
        best = "-" if self.best is None else self.label.fmt(self.best)
        completed = event.n_evaluated if b.trials is not None else event.elapsed_s
        self.progress.update(self.task, completed=completed, done=done, best=best, left=left)

    def close(self) -> None:
        self.progress.stop()


class PlainProgress:
    """One plain line per finished trial, for a pipe, a log file or CI (nothing redraws):
    number, status, its objective values, the best so far, trials done and time elapsed.
    `verbose` adds the trial's architecture string; `judge` names the evaluator, so that a
    judge's score is written as one ("proxy score -3.381", never "-338.10%")."""

    def __init__(
        self, budget: Budget, objectives: tuple[str, ...], verbose: bool = False,
        stream: IO[str] | None = None, judge: str | None = None,
    ) -> None:  # fmt: skip
        self.budget = budget
        self.objectives = objectives
        self.labels: list[Label] = [objective_label(judge, o) for o in objectives]
        self.sign = 1.0 if parse_objective(objectives[0])[1] == "maximize" else -1.0
        self.best: float | None = None
        self.verbose = verbose
        self.stream = stream

    def update(self, event: TrialEvent) -> None:
        if event.values and event.duplicate_of is None:
            v = event.values[0]
            if self.best is None or self.sign * v > self.sign * self.best:
                self.best = v
        status = event.status if event.duplicate_of is None else f"dup of #{event.duplicate_of}"
        values = "  ".join(
            f"{label.name} {label.fmt(v)}"
            for label, v in zip(self.labels, event.values or (), strict=False)
        )
        best = "-" if self.best is None else self.labels[0].fmt(self.best)
        b = self.budget
        done = (
            f"{event.n_evaluated}/{plural(b.trials, 'trial')}"
            if b.trials
            else plural(event.n_evaluated, "trial")
        )
        line = (
            f"trial {event.number:>3} {status:<10} {values or '-':<16}  best {best}  "
            f"[{done}, {event.elapsed_s:.1f}s]"
        )
        if self.verbose and event.arch:
            line += f"  {event.arch}"
        self.emit(line)

    def emit(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)

    def close(self) -> None:
        pass


class LogProgress(PlainProgress):
    """The plain lines as INFO records of the `normnas` logger (the Python API's display,
    as Optuna logs its trials): `logging` decides where they go."""

    def emit(self, line: str) -> None:
        from normnas.log import get_logger

        get_logger().info(line)


def make_progress(
    budget: Budget, objectives: tuple[str, ...], mode: bool | str, judge: str | None = None
) -> Any:
    """The progress display for `mode`: True ("auto") a redrawing bar on a terminal and plain
    lines elsewhere; "lines" plain lines; "verbose" plain lines with each architecture;
    "log" plain lines through the `normnas` logger. `judge`: the run's evaluator ("proxy",
    "bn-indicator" record a score as the accuracy objective: shown as that score)."""
    if mode == "log":
        return LogProgress(budget, objectives, judge=judge)
    if mode == "verbose":
        return PlainProgress(budget, objectives, verbose=True, judge=judge)
    if mode == "lines" or not sys.stderr.isatty():
        return PlainProgress(budget, objectives, judge=judge)
    return RichProgress(budget, objectives, judge=judge)
