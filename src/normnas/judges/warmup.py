"""The proxy warm-up of a run: zero-cost proxies pick where a strategy starts."""

from __future__ import annotations

import time

import optuna

from normnas.config import RunConfig
from normnas.search.setup import Parts
from normnas.text import plural


def warm_up(cfg: RunConfig, parts: Parts, study: optuna.Study) -> str:
    """Score `cfg.proxy_warmup` random architectures with the proxies and enqueue the best
    (as many as the strategy starts from) to be evaluated first; once per study. Its time
    comes out of `--time` like any other work of the command."""
    from normnas.proxies import proxy_warmup, seed_count, seed_study

    start = time.perf_counter()
    picks = proxy_warmup(
        parts.space, parts.data, cfg.proxy_warmup, tuple(cfg.proxies), seed=cfg.seed,
        device=cfg.device,
    )  # fmt: skip
    chosen = seed_study(study, parts.space, picks, seed_count(study.sampler))
    spent = time.perf_counter() - start
    study.set_user_attr("proxy_warmup_s", spent)
    return (
        f"proxy warm-up: {plural(len(picks), 'architecture')} scored by "
        f"{', '.join(cfg.proxies)} in "
        f"{spent:.1f}s; the best {len(chosen)} start the search"
    )
