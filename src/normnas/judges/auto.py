"""`--cascade auto`: a cascade sized to the data, the space, this machine and the time budget.

What `normnas search --data X --time 1h` runs when no judge, strategy or trial count is
named. It measures before it decides: the proxies' time on three random candidates, and the
time of a few training steps of one (scaled to a whole training: steps per epoch x epochs,
plus validation). Then:

- the last stage (training) gets what is left after the screening and the final retrain,
  `n_train` = that time / one training, at least MIN_TRAIN;
- the proxies screen `n_proxy` = PROXIES_PER_TRAINED x n_train candidates, capped by
  SCREEN_SHARE of the budget at the measured proxy time and by MAX_PROXY.

Why this shape: on NAS-Bench-201 the proxies' vote ranks cells about as well as 12 epochs of
training (BENCHMARKS.md, "Cheap and right"), so a wide screen that trains only the best few
is the cheapest good search; the screen is capped so training always keeps most of the time.
A resumed study reuses the cascade it recorded (the same command must give the same study).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import numpy as np
import torch

SCREEN_SHARE = 0.3  # of the budget, at most, for the proxies
PROXIES_PER_TRAINED = 25
MAX_PROXY = 2000
MIN_TRAIN = 3
PROBE_STEPS = 3


@dataclasses.dataclass(frozen=True)
class AutoChoice:
    spec: str
    proxy_s: float  # one candidate's proxies, measured
    train_s: float  # one candidate's training, estimated from PROBE_STEPS steps
    line: str


def measure(cfg: Any, parts: Any) -> tuple[float, float]:
    """(seconds of one candidate's proxies, estimated seconds of one candidate's training),
    on the cores other processes leave free, as the search will run."""
    from normnas.train.threads import cpu_threads, run_threads

    with cpu_threads(run_threads()):
        return _measure(cfg, parts)


def _measure(cfg: Any, parts: Any) -> tuple[float, float]:
    from normnas.proxies import ProxyEvaluator
    from normnas.train.fit import make_optimizer

    space, data, tc = parts.space, parts.data, parts.train_config
    rng = np.random.default_rng([cfg.seed, 0xA070])
    archs = [space.sample(rng) for _ in range(3)]
    judge = ProxyEvaluator(space, data, tuple(cfg.proxies), seed=cfg.seed, device=cfg.device)
    judge.scores(archs[0])  # the first call pays for the batch and lazy set-up: not counted
    proxy = []
    for arch in archs:
        start = time.perf_counter()
        judge.scores(arch)
        proxy.append(time.perf_counter() - start)
    train = []
    loss_fn = torch.nn.CrossEntropyLoss()
    bs = min(tc.batch_size, len(data.train))
    x, y = data.train.x[:bs], data.train.y[:bs]
    for arch in archs:
        torch.manual_seed(cfg.seed)
        model = space.build(arch, data.num_classes, data.in_channels).train()
        opt = make_optimizer(model, tc)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()  # the first step pays for allocations: not counted
        opt.step()
        start = time.perf_counter()
        for _ in range(PROBE_STEPS):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
        train.append((time.perf_counter() - start) / PROBE_STEPS)
    steps = -(-len(data.train) // bs)
    # validation and the epoch's bookkeeping: about a fifth of an epoch's steps, measured here
    per_training = statistics.median(train) * steps * tc.epochs * 1.2
    return statistics.median(proxy), per_training


def choose(cfg: Any, parts: Any, time_s: float) -> AutoChoice:
    """The cascade for `time_s` seconds of search (see the module doc)."""
    proxy_s, train_s = measure(cfg, parts)
    n_train_room = (time_s - 1.3 * train_s) / (train_s + PROXIES_PER_TRAINED * proxy_s)
    n_train = max(MIN_TRAIN, int(n_train_room))
    n_proxy = min(
        MAX_PROXY,
        max(n_train * 2, int(SCREEN_SHARE * time_s / max(proxy_s, 1e-3))),
        n_train * PROXIES_PER_TRAINED,
    )
    spec = f"proxy:{n_proxy},train"
    line = (
        f"auto cascade for {time_s:.0f}s on this machine: {spec} (the proxies take "
        f"{proxy_s:.2f}s a candidate, a training about {train_s:.1f}s; ~{n_train} trained)"
    )
    return AutoChoice(spec, proxy_s, train_s, line)
