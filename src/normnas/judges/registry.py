"""Judges by name: each `--evaluator` name maps to a factory `(cfg, parts, url) -> evaluator`.

`make_evaluator` is how a run gets its judge. The loop in `search/` is handed the evaluator
and never asks which one it is; the judges themselves live below (training in
`search.evaluators`, supernets and the BN-scale indicator in `oneshot/`, zero-cost proxies
in `proxies/`) and are imported when a factory runs, so naming a judge costs nothing.
A new judge is one `@register_judge("name")` factory here (and its name in
`normnas.config.RunConfig.evaluator`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from normnas.config import RunConfig
from normnas.errors import ConfigError
from normnas.search.result import Evaluator
from normnas.search.setup import Parts, trial_checkpoints
from normnas.search.study import safe_file_stem, storage_dir

JudgeFactory = Callable[[RunConfig, Parts, str], Evaluator]

JUDGES: dict[str, JudgeFactory] = {}


def register_judge(name: str) -> Callable[[JudgeFactory], JudgeFactory]:
    """A decorator adding a factory to `JUDGES` under `name` (a name is registered once)."""

    def add(factory: JudgeFactory) -> JudgeFactory:
        if name in JUDGES:
            raise ValueError(f"a judge named {name!r} is registered already")
        JUDGES[name] = factory
        return factory

    return add


def make_evaluator(cfg: RunConfig, parts: Parts, url: str) -> Evaluator:
    """The study's judge (`cfg.evaluator`) on the run's parts; `url` is the study's storage,
    beside which a judge keeps its files (trial checkpoints, a supernet)."""
    factory = JUDGES.get(cfg.evaluator)
    if factory is None:
        raise ConfigError(
            f"--evaluator: expected one of {', '.join(JUDGES)}, got {cfg.evaluator!r}"
        )
    judge = factory(cfg, parts, url)
    if cfg.latency.target is not None:  # `--target`: latency predicted, not timed per trial
        from normnas.latency.search import predicted_latency

        judge = predicted_latency(judge, parts.space, parts.data, cfg.latency)
    return judge


@register_judge("train")
def train_judge(cfg: RunConfig, parts: Parts, url: str) -> Evaluator:
    """Training from scratch; the best trials' weights are kept beside the storage."""
    from normnas.search.evaluators import TrainEvaluator

    return TrainEvaluator(
        parts.space,
        parts.data,
        parts.train_config,
        cfg.objectives,
        constraints=parts.constraints,
        checkpoints=trial_checkpoints(cfg.study_name, url),
    )


@register_judge("proxy")
def proxy_judge(cfg: RunConfig, parts: Parts, url: str) -> Evaluator:
    """The vote of zero-cost proxies on untrained networks."""
    from normnas.proxies import ProxyEvaluator

    return ProxyEvaluator(
        parts.space, parts.data, tuple(cfg.proxies), seed=cfg.seed, device=cfg.device
    )


def supernet_path(cfg: RunConfig, url: str) -> Path:
    """Where a study's supernet checkpoint lives: beside the study's storage."""
    return storage_dir(url) / f"{safe_file_stem(cfg.study_name)}.{cfg.evaluator}.pt"


def _supernet(cfg: RunConfig, parts: Parts, url: str) -> object:
    """The study's weight-sharing supernet: trained here, or reloaded from its checkpoint."""
    from normnas.oneshot import SupernetOptions, prepare_supernet

    o = cfg.oneshot
    options = SupernetOptions(
        judge=cfg.evaluator,
        sampling=o.sampling,
        affine=o.affine,
        C=o.C,
        N=o.N,
        warmup_epochs=o.warmup_epochs,
        bn_epochs=o.bn_epochs,
        few_shot=o.few_shot,
        few_shot_fraction=o.few_shot_fraction,
    )
    tc = parts.train_config
    if o.epochs is not None:
        tc = dataclasses.replace(tc, epochs=o.epochs)
    return prepare_supernet(parts.space, parts.data, tc, options, supernet_path(cfg, url))


@register_judge("supernet")
def supernet_judge(cfg: RunConfig, parts: Parts, url: str) -> Evaluator:
    """A sub-network of the trained supernet, its BN statistics handled by `bn_mode`."""
    from normnas.oneshot import SupernetEvaluator

    o = cfg.oneshot
    return SupernetEvaluator(
        _supernet(cfg, parts, url),
        parts.data,
        bn_mode=o.bn_mode,
        calib_batches=o.calib_batches,
        seed=cfg.seed,
    )


@register_judge("bn-indicator")
def bn_indicator_judge(cfg: RunConfig, parts: Parts, url: str) -> Evaluator:
    """The BN-scale indicator of the supernet trained with only its BN layers learning."""
    from normnas.oneshot import BNIndicatorEvaluator

    return BNIndicatorEvaluator(_supernet(cfg, parts, url), parts.data)
