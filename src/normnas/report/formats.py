"""How a figure is written in the terminal's output (the leaderboard, `status`, `best`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

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


# judges whose value under `accuracy` is a score to rank by, not a fraction of correct answers:
# the study keeps it as its objective `accuracy` (every sampler maximizes it unchanged), but
# it is shown under the score's own name and never as a percentage
JUDGE_SCORES = {"proxy": "proxy score", "bn-indicator": "bn_score"}
ACCURACY_IS = "accuracy_is"  # the result's `extra` key (attribute `x.accuracy_is`) saying so


class Label(NamedTuple):
    """How an objective's values are named and written where they are shown."""

    name: str  # "accuracy", "proxy score", "bn_score", "params", "f1", ...
    percent: bool  # a fraction shown as a percentage

    @property
    def is_score(self) -> bool:
        """A judge's score standing in for the accuracy objective."""
        return self.name in JUDGE_SCORES.values()

    def fmt(self, value: Any) -> str:
        """`value` as the terminal writes it: 95.83%, -3.381, 142.1k, 0.42 ms; "-" for None."""
        if value is None:
            return MISSING
        return fmt_acc(value) if self.percent else fmt_metric(self.name, value)


def score_name(judge: Any = None, accuracy_is: Any = None) -> str | None:
    """The name of the score a judge records as `accuracy`, or None when it is an accuracy.

    `judge`: the run config's evaluator ("proxy", "bn-indicator", "train", ...);
    `accuracy_is`: what a result's `extra["accuracy_is"]` says it holds ("bn_score",
    "proxy:synflow", "proxy_z_sum:synflow,jacov"): it wins, as it is the result's own word.
    """
    if isinstance(accuracy_is, str) and accuracy_is:
        return JUDGE_SCORES["proxy"] if accuracy_is.startswith("proxy") else accuracy_is
    return JUDGE_SCORES.get(judge) if isinstance(judge, str) else None


def objective_label(source: Any = None, objective: str = "accuracy") -> Label:
    """How the values of `objective` are named and written (see `Label`).

    Only `accuracy` can be a score; `source` says by which judge: a judge name, a study's
    meta (its run config's `evaluator`), an Optuna study (its meta, else the first trial's
    `x.accuracy_is`), or None (an accuracy). Another objective is its metric's name."""
    from normnas.search.records import parse_objective

    try:
        name = parse_objective(objective)[0]
    except ValueError:  # a name of an older version: shown as a plain number
        name = objective
    if name != "accuracy":
        return Label(name, False)
    score = _score_of(source)
    return Label(score, False) if score else Label("accuracy", True)


def _score_of(source: Any) -> str | None:
    if source is None or isinstance(source, str):
        return score_name(source)
    if isinstance(source, Mapping):
        return score_name((source.get("config") or {}).get("evaluator"))
    from normnas.search.study import study_meta  # an Optuna study

    config = study_meta(source).get("config") or {}
    if config.get("evaluator"):
        return score_name(config["evaluator"])
    # a study made around `run_search` (no run config): its results say what they hold
    import optuna

    key = "x." + ACCURACY_IS
    for t in source.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if key in t.user_attrs:
            return score_name(accuracy_is=t.user_attrs[key])
    return None


def latency_warning(load: float | None, cores: int | None, threads: int = 1) -> str:
    """Why a latency figure is marked unreliable, in one line (see
    `normnas.train.cost.latency_reliable`): the load, or else its disagreeing rounds."""
    if load is not None and cores is not None and load > cores - threads:
        return f"latency measured under load {load:.1f} on {plural(cores, 'core')}: unreliable"
    return f"latency unreliable: its timing rounds differed by more than {MAX_ROUND_SPREAD:.0%}"
