"""What a search with `--target` uses: the judge wrapped so latency is predicted, and the
finalists measured for real on the target (the leaderboard shows both)."""

from __future__ import annotations

from typing import Any

from normnas.latency.evaluator import PredictedLatency
from normnas.latency.predict import LatencyPredictor
from normnas.latency.profile import measure_network
from normnas.latency.resolve import table_for
from normnas.latency.targets import Target
from normnas.search.spaces import network_part
from normnas.spaces.base import Arch, SearchSpace


def _shape(data: Any) -> tuple[tuple[int, int, int], int]:
    h, w = data.image_size
    return (int(data.in_channels), int(h), int(w)), int(data.num_classes)


def predicted_latency(
    evaluator: Any, space: SearchSpace, data: Any, options: Any
) -> PredictedLatency:
    """`evaluator` with latency predicted on `options.target` (a `LatencyOptions`)."""
    net_space = getattr(space, "arch_space", None) or space  # a JointSpace's network part
    target = Target(options.target, options.threads, options.batch)
    shape, classes = _shape(data)
    table = table_for(net_space, target, options.table, shape, classes)
    return PredictedLatency(evaluator, LatencyPredictor(table, net_space), space)


def measure_finalist(
    space: SearchSpace, arch: Arch, label: str, shape: tuple[int, int, int], classes: int
) -> float:
    """The measured latency (ms) of a finalist on the target named by a trial's
    `latency_target` label ("onnxruntime, 1 thread(s), batch 4")."""
    name, threads, batch = label.split(", ")
    target = Target(name, int(threads.split()[0]), int(batch.split()[1]))
    net_space, net_arch, _ = network_part(space, arch)
    return measure_network(net_space, net_arch, target, shape, classes)
