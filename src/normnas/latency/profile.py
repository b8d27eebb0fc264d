"""Profile a space's latency table on a target, and time whole networks the same way.

Each unit of `blocks.all_units` is built, prepared for the target (`targets.runner`: BN
folded, traced, exported...) and timed with `protocol.time_call`; its entry is that time
less the time of an empty graph (an identity) at the same input, so the per-call overhead
of the runtime (a Python call, an ONNX Runtime `run`) is counted once per network, in the
fitted constant, and not once per unit. Then `fit_archs` random architectures (seeded,
recorded in the table so a benchmark can leave them out) are timed whole and the
predictor's correction is fitted on them (`predict.fit_correction`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
from torch import nn

from normnas.latency import blocks
from normnas.latency.predict import fit_correction, folds_constants
from normnas.latency.protocol import LoadWatch, time_call
from normnas.latency.table import LatencyTable
from normnas.latency.targets import Target, cpu_model, pinned, runner, runtime_versions
from normnas.spaces.base import Arch, SearchSpace

DEFAULT_SHAPE = (3, 32, 32)
DEFAULT_CLASSES = 10
# the protocol: (warm-up calls, rounds, ms per round); --quick for smoke tests only
PROTOCOL = {"warmup": 5, "rounds": 5, "round_ms": 30.0}
QUICK_PROTOCOL = {"warmup": 2, "rounds": 2, "round_ms": 5.0}


def table_key(
    space: SearchSpace, target: Target, shape: Sequence[int] = DEFAULT_SHAPE,
    classes: int = DEFAULT_CLASSES,
) -> dict[str, Any]:  # fmt: skip
    """What a table's figures are valid for (see `normnas.latency.table`)."""
    to_dict = getattr(space, "to_dict", None)
    return {
        "space": blocks.space_name(space),
        "space_options": to_dict() if callable(to_dict) else {},
        "input_shape": [int(s) for s in shape],
        "classes": int(classes),
        "target": target.name,
        "threads": target.threads,
        "batch": target.batch,
        "versions": runtime_versions(target),
        "cpu": cpu_model(),
    }


def time_module(
    model: nn.Module, target: Target, shape: Sequence[int], protocol: dict[str, Any] | None = None
) -> float:
    """ms per batch of `model` on the target (threads pinned), by the table's protocol."""
    with pinned(target):
        return time_call(runner(model, target, shape), **(protocol or PROTOCOL))


def measure_network(
    space: SearchSpace, arch: Arch, target: Target, shape: Sequence[int] = DEFAULT_SHAPE,
    classes: int = DEFAULT_CLASSES, protocol: dict[str, Any] | None = None,
) -> float:  # fmt: skip
    """The measured latency (ms) of `arch`'s whole network on the target."""
    model = space.build(arch, classes, shape[0])
    return time_module(model, target, shape, protocol)


def sample_archs(space: SearchSpace, n: int, seed: int, avoid: Collection[str] = ()) -> list[Arch]:
    """`n` distinct random architectures (by canonical string), none of `avoid`."""
    rng = np.random.default_rng(seed)
    seen = {space.to_str(space.canonical(space.from_str(a))) for a in avoid}
    out: list[Arch] = []
    for _ in range(100 * n):
        arch = space.sample(rng)
        key = space.to_str(space.canonical(arch))
        if key not in seen:
            seen.add(key)
            out.append(arch)
            if len(out) == n:
                break
    return out


def profile(
    space: SearchSpace,
    target: Target,
    shape: Sequence[int] = DEFAULT_SHAPE,
    classes: int = DEFAULT_CLASSES,
    fit_archs: int = 8,
    seed: int = 0,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
) -> LatencyTable:
    """Time every unit of the space on the target, fit the correction, return the table."""
    protocol = dict(QUICK_PROTOCOL if quick else PROTOCOL)
    keys = blocks.all_units(space, shape, classes)
    entries: dict[str, float] = {}
    null: dict[tuple[int, ...], float] = {}
    start = time.perf_counter()
    with LoadWatch(target.threads) as watch:
        for i, (key, module, s) in enumerate(blocks.iter_modules(keys)):
            if s not in null:
                null[s] = time_module(nn.Identity(), target, s, protocol)
            entries[key] = max(time_module(module, target, s, protocol) - null[s], 0.0)
            if progress is not None and (i + 1) % 50 == 0:
                progress(f"{i + 1}/{len(keys)} units timed")
        archs = sample_archs(space, fit_archs, seed)
        measured = [measure_network(space, a, target, shape, classes, protocol) for a in archs]
    fold = folds_constants(target.name)
    sums = [sum(entries[u] for u in blocks.units(space, a, shape, classes, fold)) for a in archs]
    assert watch.load is not None
    table = LatencyTable(
        key=table_key(space, target, shape, classes),
        entries=entries,
        fit={
            **fit_correction(sums, measured),
            "archs": [space.to_str(a) for a in archs],
            "measured_ms": [round(v, 4) for v in measured],
            "sums_ms": [round(v, 4) for v in sums],
        },
        protocol={**protocol, "quick": quick, "entry": "unit time less an identity's"},
        load=watch.load.to_dict(),
        warning=watch.load.warning(),
        profile_s=time.perf_counter() - start,
    )
    return table


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
