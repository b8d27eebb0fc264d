"""Zero-cost proxies: scores of untrained networks, their vote, a judge and a warm-up."""

from normnas.proxies.evaluator import ProxyEvaluator, ReferenceScale, proxy_batch
from normnas.proxies.registry import (
    BASELINES,
    DEFAULT_PROXIES,
    PROXIES,
    SizePrior,
    get_proxy,
    parse_proxies,
    score_all,
    vote,
)
from normnas.proxies.warmup import WarmupPick, proxy_warmup, seed_count, seed_study

__all__ = [
    "BASELINES",
    "DEFAULT_PROXIES",
    "PROXIES",
    "ProxyEvaluator",
    "ReferenceScale",
    "SizePrior",
    "WarmupPick",
    "get_proxy",
    "parse_proxies",
    "proxy_batch",
    "proxy_warmup",
    "score_all",
    "seed_count",
    "seed_study",
    "vote",
]
