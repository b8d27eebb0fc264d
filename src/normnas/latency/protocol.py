"""How a latency is timed, and when the machine was too busy for the figure to be trusted.

Protocol (every entry of a table and every whole network): `warmup` calls, then `rounds`
rounds of `repeats` calls each (repeats chosen so a round lasts about `round_ms`); the
figure is the smallest of the rounds' medians. Other work only ever adds time, so the
quietest round is the closest to the code's own cost, and the median inside a round
ignores single preempted calls. The caller pins the threads (see `targets`).

Busy machine: while timing, `LoadWatch` reads the machine's busy CPU time (/proc/stat)
less this process's own, i.e. the cores OTHER processes kept busy on average, and the
1-minute load average at the start and end. The figures are flagged unreliable when other
processes kept more than `BUSY_LIMIT` (0.5) cores busy: half a core of other work means a
timed call found some core taken about half of the time, and shared caches, memory
bandwidth and clock boost are disturbed even when a free core is left. Where /proc/stat
is missing the 1-minute load average stands in: unreliable when it exceeds the threads in
use plus `BUSY_LIMIT` (the load counts our own timing threads too).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from normnas.train.threads import cpu_count, machine_busy_s, own_cpu_s

BUSY_LIMIT = 0.5  # cores kept busy by other processes above which figures are unreliable


def time_call(
    fn: Callable[[], object], warmup: int = 5, rounds: int = 5, round_ms: float = 30.0
) -> float:
    """Milliseconds per call of `fn`: the smallest round median (see the module doc)."""
    if rounds < 1 or warmup < 0 or round_ms <= 0:
        raise ValueError(f"time_call: rounds >= 1, warmup >= 0, round_ms > 0 needed, got "
                         f"rounds={rounds}, warmup={warmup}, round_ms={round_ms}")  # fmt: skip
    t0 = time.perf_counter()
    for _ in range(max(warmup, 1)):
        fn()
    per_call = (time.perf_counter() - t0) * 1e3 / max(warmup, 1)
    # at least 5 calls a round (a median of fewer is no median), at most 500 (tiny ops)
    repeats = max(5, min(500, math.ceil(round_ms / max(per_call, 1e-3))))
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        medians.append(statistics.median(times))
    return min(medians)


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not on Windows
        return None


@dataclass
class Load:
    """The machine's load while something was timed (see the module doc)."""

    others_busy: float | None  # cores other processes kept busy on average; None: unknown
    load_start: float | None  # 1-minute load average at the start
    load_end: float | None  # ... and at the end
    cores: int
    threads: int

    @property
    def reliable(self) -> bool:
        if self.others_busy is not None:
            return self.others_busy <= BUSY_LIMIT
        loads = [v for v in (self.load_start, self.load_end) if v is not None]
        return not loads or max(loads) <= self.threads + BUSY_LIMIT

    def warning(self) -> str | None:
        """One line saying why the figures cannot be trusted, or None when they can."""
        if self.reliable:
            return None
        if self.others_busy is not None:
            busy = f"other processes kept {self.others_busy:.1f} cores busy"
        else:
            busy = f"1-minute load {max(self.load_start or 0, self.load_end or 0):.1f}"
        return (
            f"warning: {busy} (limit {BUSY_LIMIT} beside {self.threads} timing "
            f"thread(s) on {self.cores} cores): these latencies are unreliable; "
            "profile again on an idle machine"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "others_busy_cores": None if self.others_busy is None else round(self.others_busy, 2),
            "load_1min_start": self.load_start,
            "load_1min_end": self.load_end,
            "cores": self.cores,
            "threads": self.threads,
            "reliable": self.reliable,
        }


class LoadWatch:
    """`with LoadWatch(threads) as watch: ...` then `watch.load`: the load of the block."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.load: Load | None = None

    def __enter__(self) -> LoadWatch:
        self._wall, self._busy, self._own = time.monotonic(), machine_busy_s(), own_cpu_s()
        self._load = load_average()
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, own = time.monotonic(), machine_busy_s(), own_cpu_s()
        others = None
        if busy is not None and self._busy is not None and wall > self._wall:
            others = max(((busy - self._busy) - (own - self._own)) / (wall - self._wall), 0.0)
        self.load = Load(others, self._load, load_average(), cpu_count(), self.threads)
