"""`normnas.search(...)`: the whole search from Python, as `normnas search` does it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from normnas.config import parse_config, parse_duration
from normnas.session import SearchOutcome
from normnas.session import run as _run


def search(
    space: Any = "macro",
    data: Any = "digits",
    root: str | None = None,
    verify: bool = True,
    strategy: str = "evolution",
    objectives: Sequence[str] = ("accuracy",),
    trials: int | None = None,
    time: float | str | None = None,
    epochs: int | None = None,
    storage: str | None = None,
    study: str | None = None,
    seed: int = 0,
    pruner: str = "none",
    workers: int = 1,
    max_params: float | None = None,
    max_flops: float | None = None,
    max_latency_ms: float | None = None,
    device: str = "cpu",
    final: bool = True,
    progress: bool = False,
    verbose: bool = True,
    train: dict[str, Any] | None = None,
    strategy_options: dict[str, Any] | None = None,
    space_options: dict[str, Any] | None = None,
    force: bool = False,
    evaluator: str = "train",
    bn_mode: str | None = None,
    oneshot: dict[str, Any] | None = None,
    proxies: str | Sequence[str] | None = None,
    proxy_warmup: int = 0,
    cascade: str | None = None,
    proposer: str = "random",
    method: str | None = None,
    gradient: dict[str, Any] | None = None,
    evaluate: Callable[..., Any] | None = None,
    generations: int | None = None,
    population_size: int | None = None,
) -> SearchOutcome:
    """Search `space` (a name or a SearchSpace) on `data` (a name or a DataBundle).

    Same semantics as the command line; `storage=None` is `sqlite:///normnas.db` in the
    working directory (use "sqlite:///:memory:"-like URLs or a path of your own to keep it
    elsewhere). `root` is where data sets are downloaded to and looked for (the CLI's
    `--data-root`; default $NORMNAS_DATA or ~/.cache/normnas/data); `verify=False` accepts
    an archive whose checksum differs from the official one. `time` is the wall time of the
    whole call, final retrain included. `evaluator` is "train", "supernet" or
    "bn-indicator" (`bn_mode` and the `oneshot` options as in the YAML) or "proxy"
    (`proxies`, names or "a,b"); `proxy_warmup=N` starts the search from the best of N
    proxy-scored random architectures. `method="darts"|"gdas"|"drnas"` runs a gradient-based
    search instead of `strategy` (`gradient` holds its options as in the YAML: order,
    epochs, selection, affine, track_running_stats, C, N, ...). Returns the
    study, the best trial (or Pareto front), the test accuracy of the retrained best model
    and the path of its checkpoint.
    `evaluate=my_fn` judges each architecture with your own function instead:
    `my_fn(model, data)` (the untrained network and the DataBundle) or `my_fn(arch)`,
    returning a number or a dict of named numbers; `objectives` name them as
    "NAME:maximize" / "NAME:minimize" (or accuracy, params, flops, latency). An exception
    in it is a failed trial with its message; see `normnas.search.custom`.
    `cascade="proxy:500,train:20"` judges with a cascade (see `normnas.judges.cascade`);
    `proposer="evolution"` or `"local"` searches its first stage on that stage's judge
    instead of drawing its candidates at random (see `normnas.judges.proposers`).
    `space` may also be the path of a LayerSpace YAML file. Evolution's budget can be
    `generations` x `population_size` (the first generation is the random initial
    population; each later one is population_size children) instead of `trials`.
    `verbose=True` (the default) logs one line per trial and the closing lines through the
    `normnas` logger at INFO (see `normnas.log`); `verbose=False` is silent. When the model
    returned is not a plain final retrain (the retrain was cut by `time` or ended below the
    best trial's own network, which is then returned) a `FinalModelWarning` says so and
    `outcome.final_note` holds the line.
    Raises `normnas.errors.SearchFailedError` (with the outcome as `.outcome`) when no
    trial succeeded, and another `UserError` for bad input, before any trial runs.
    """
    import time as _time

    started = _time.monotonic()
    space_obj = None if isinstance(space, str) else space
    data_obj = None if isinstance(data, str) else data
    cfg: dict[str, Any] = {
        "space": {"name": space, "options": space_options or {}}
        if isinstance(space, str)
        else _space_config(space),
        "data": data if isinstance(data, str) else getattr(data, "name", "data"),
        "data_root": root,
        "verify": verify,
        "force": force,
        "evaluator": evaluator,
        "proxy_warmup": proxy_warmup,
        "cascade": cascade,
        "proposer": proposer,
        "method": method,
        "gradient": gradient or {},
        **({"proxies": proxies} if proxies is not None else {}),
        "oneshot": {**(oneshot or {}), **({"bn_mode": bn_mode} if bn_mode else {})},
        "strategy": strategy,
        "strategy_options": {
            **(strategy_options or {}),
            **({"population_size": population_size} if population_size is not None else {}),
        },
        "generations": generations,
        "objectives": list(objectives),
        "trials": trials,
        "time": None if time is None else parse_duration(time),
        "storage": storage,
        "study": study or (None if isinstance(space, str) else f"normnas-{space.name}"),
        "seed": seed,
        "pruner": pruner,
        "workers": workers,
        "constraints": {
            "max_params": max_params,
            "max_flops": max_flops,
            "max_latency_ms": max_latency_ms,
        },
        "device": device,
        "final": final,
        "train": {**(train or {}), **({"epochs": epochs} if epochs is not None else {})},
    }
    mode: bool | str = True if progress else ("log" if verbose else False)
    outcome = _run(
        parse_config(cfg), space_obj, data_obj, progress=mode, started=started,
        evaluate=evaluate,
    )  # fmt: skip
    _speak(outcome, verbose)
    if outcome.failure is not None:
        outcome.failure.outcome = outcome  # type: ignore[attr-defined]
        raise outcome.failure
    return outcome


class FinalModelWarning(UserWarning):
    """The model a search returned is not a plain final retrain (cut, or a trial's own)."""


def _speak(outcome: SearchOutcome, verbose: bool) -> None:
    """The run's closing lines through the `normnas` logger; a warning when the returned
    model is worse than it looks (a retrain cut short, or a trial's weights in its place),
    whatever `verbose` says."""
    if outcome.final_note is not None:
        warnings.warn(outcome.final_note, FinalModelWarning, stacklevel=4)  # the caller's line
    if not verbose:
        return
    from normnas.log import get_logger

    log = get_logger()
    for note in outcome.notes:
        if note != outcome.final_note:
            log.info("note: %s", note)
    if outcome.best is not None:
        test = outcome.test_accuracy
        log.info(
            "best #%d%s; study %s in %s%s",
            outcome.best.number,
            "" if test is None else f": test accuracy {100 * test:.2f}%",
            outcome.study.study_name,
            outcome.storage,
            "" if outcome.model_path is None else f"; model {outcome.model_path}",
        )


def _space_config(space: Any) -> dict[str, Any]:
    """The config entry recorded for a space given as an object (so export can rebuild it)."""
    name = "macro" if space.name.startswith("macro") else "nb201"
    name = "layers" if space.name == "layers" else name
    to_dict = getattr(space, "to_dict", None)
    return {"name": name, "options": to_dict() if callable(to_dict) else {}}
