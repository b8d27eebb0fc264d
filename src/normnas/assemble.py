"""The parts of a search run made from a `RunConfig`: space, data, training config, judge,
study and fingerprint, and the retrain of a study's best model from the config it recorded.

Between the judges and the run: it reads the config (which `search/` does not import) and
asks `normnas.judges` for the evaluator, so that the loop below is handed everything it
uses. The whole run (`normnas.session`), the worker processes and the Ray actors build on
these; the config-free checks and `Parts` stay in `normnas.search.setup`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from normnas.config import RunConfig, parse_config
from normnas.errors import DataError, SearchFailedError, StorageError
from normnas.judges import make_evaluator
from normnas.search import records as rec
from normnas.search.runner import Constraints
from normnas.search.setup import Parts, check_image_size, worker_seed
from normnas.search.spaces import make_space, space_spec
from normnas.search.strategies import make_pruner, make_sampler
from normnas.search.study import (
    default_storage,
    open_study,
    storage_dir,
    storage_errors,
    study_file,
    study_meta,
)
from normnas.spaces.base import SearchSpace


def train_config(cfg: RunConfig) -> Any:
    """The training settings of each trial (and of the final retrain)."""
    from normnas.train import TrainConfig

    return TrainConfig(**cfg.train.model_dump(), seed=cfg.seed, device=cfg.device)


def build_parts(
    cfg: RunConfig,
    space: SearchSpace | None = None,
    data: Any = None,
    url: str | None = None,
    judge: bool = True,
) -> Parts:
    """Space, data, constraints, training config and (with `judge`) the evaluator."""
    from normnas.data import load

    if space is None:
        space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
    if data is None:
        data = load(
            cfg.data,
            root=cfg.data_root,
            verify=cfg.verify,
            valid_fraction=cfg.valid_fraction,
            seed=cfg.seed,
            sequences=cfg.space.name == "seq",
        )
    check_image_size(space, data)
    constraints = Constraints(**cfg.constraints.model_dump())
    parts = Parts(space, data, None, constraints, train_config(cfg))
    if judge:
        parts.evaluator = make_evaluator(
            cfg, parts, url or cfg.storage or default_storage(cfg.workers)
        )
    return parts


def make_study(cfg: RunConfig, space: SearchSpace, storage: Any, index: int = 0) -> optuna.Study:
    """The study named by `cfg`, opened (or made) with its strategy and pruner; `index`: the
    worker (each draws its own stream of seeds)."""
    sampler = make_sampler(
        cfg.strategy, space, worker_seed(cfg.seed, index), **cfg.strategy_options
    )
    pruner = make_pruner(cfg.pruner, **cfg.pruner_options)
    return open_study(cfg.study_name, storage, rec.directions(cfg.objectives), sampler, pruner)


def fingerprint(cfg: RunConfig, space: SearchSpace) -> dict[str, Any]:
    """What defines a study's results: rerunning with a change would mix incomparable trials."""
    data: dict[str, Any] = {"name": cfg.data}
    path = Path(cfg.data.split(":", 1)[1] if ":" in cfg.data[2:] else cfg.data).expanduser()
    if path.exists():
        data["path"] = str(path.resolve())
        if path.is_file():
            data["bytes"] = path.stat().st_size
    judge: dict[str, Any] = {"evaluator": cfg.evaluator}
    if cfg.evaluator in ("supernet", "bn-indicator"):
        judge["oneshot"] = cfg.oneshot.model_dump(mode="json")
        if cfg.oneshot.few_shot is None:  # the studies made before few-shot existed match
            for key in ("few_shot", "few_shot_fraction"):
                judge["oneshot"].pop(key)
    if cfg.evaluator == "proxy":
        judge["proxies"] = list(cfg.proxies)
    if cfg.cascade:  # the cheap stages' scores are part of what the study holds
        judge["cascade"] = cfg.cascade
    if cfg.latency.target is not None:  # predicted latencies: of this target's table
        judge["latency"] = cfg.latency.model_dump(mode="json")
    return {
        "space": space_spec(space),
        "data": data,
        "judge": judge,
        "valid_fraction": cfg.valid_fraction,
        "seed": cfg.seed,
        "train": cfg.train.model_dump(mode="json"),
        "objectives": list(cfg.objectives),
    }


def check_evaluate(cfg: RunConfig, evaluate: Any) -> None:
    """ConfigError when a custom evaluate function (or its absence) does not fit `cfg`."""
    from normnas.errors import ConfigError

    custom = [o for o in cfg.objectives if rec.is_custom(o)]
    if evaluate is None:
        if custom:
            raise ConfigError(
                f"--objective {custom[0]}: a metric of your own needs "
                "normnas.search(evaluate=your_function); the built-in judges give "
                "accuracy, params, flops and latency"
            )
        return
    from normnas.search.custom import call_mode

    call_mode(evaluate)  # a function whose signature fits: before any data is loaded
    if cfg.evaluator != "train" or cfg.method is not None:
        raise ConfigError("evaluate: your function is the judge; it takes no evaluator= or method=")
    if cfg.workers > 1:
        raise ConfigError("evaluate: your function runs in this process; use workers=1")


def ensure_final_model(
    study: Any, url: str, data: str | None = None, data_root: str | None = None
) -> Path:
    """The study's best-model checkpoint; retrained from the study's config if missing
    (`normnas.search.final` retrains and saves it).

    `data`/`data_root` replace the recorded data for that retrain (the data has moved).
    """
    # torch is imported with the retrain, not with this module
    from normnas.search.final import data_error, find_checkpoint, rebuild_config, retrain, save

    found = find_checkpoint(study.study_name, study.user_attrs.get("model_path"), storage_dir(url))
    if found is not None:
        return found
    front = rec.best_records(study)
    if not front:
        raise SearchFailedError(f"study {study.study_name!r} has no completed trial")
    config = rebuild_config(study.study_name, study_meta(study), data, data_root)
    try:
        parts = build_parts(parse_config(config), judge=False)
    except DataError as e:
        raise data_error(study.study_name, config, e) from None
    arch = parts.space.from_params(front[0].params)
    fm = retrain(
        parts.space, arch, parts.data, parts.train_config, study.study_name, front[0].number
    )
    out = save(fm, study_file(url, study.study_name, "-best.pt"))
    try:  # a read-only storage: the checkpoint is found beside it next time anyway
        with storage_errors(url):
            study.set_user_attr("model_path", str(out))
            study.set_user_attr("test_accuracy", fm.test_accuracy)
    except StorageError:
        pass
    return out
