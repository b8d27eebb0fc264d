"""How many CPU threads a training run should use: the cores other processes leave free.

Why: torch's intra-op pool spins while it waits for its threads. When another process
holds a core, a 2-thread step waits for a thread that is not scheduled, and training
runs 10-40x slower than on one thread (measured here: a demo trial took 38 s on 2 threads
beside two busy loops, 4 s on one; 1.4 s and 2.5 s on an idle machine). So before each
training run `free_threads()` looks at what the other processes used since it last looked
(Linux /proc/stat minus this process's own CPU time; elsewhere the 1-minute load average)
and returns the cores they left, at least 1.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

# the window the other processes' use is averaged over: since the last look when that was
# MIN..MAX seconds ago (the last trial), else a fresh sample of SAMPLE_S (an old window
# would hide load that began since)
_MIN_WINDOW_S = 0.1
_MAX_WINDOW_S = 2.0
_SAMPLE_S = 0.1


@dataclass
class _Look:
    wall: float  # time.monotonic()
    busy: float | None  # busy CPU seconds of the whole machine (/proc/stat), None off Linux
    own: float  # this process's CPU seconds (children included)


_last: _Look | None = None


def machine_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all but idle and iowait)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    # guest time is already counted in user time
    total = sum(ticks[:8])
    return (total - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _look() -> _Look:
    return _Look(time.monotonic(), machine_busy_s(), own_cpu_s())


def others_busy_cores() -> float:
    """Cores the other processes kept busy since the last call (a short sample on the first)."""
    global _last
    before = _last
    age = None if before is None else time.monotonic() - before.wall
    if before is None or age is None or not _MIN_WINDOW_S <= age <= _MAX_WINDOW_S:
        before = _look()
        time.sleep(_SAMPLE_S)
    now = _look()
    _last = now
    if now.busy is None or before.busy is None:
        return float(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0.0
    wall = max(now.wall - before.wall, 1e-6)
    others = (now.busy - before.busy) - (now.own - before.own)
    return max(others / wall, 0.0)


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_threads(limit: int | None = None) -> int:
    """The cores the other processes leave free (rounded down, >= 1), at most `limit`."""
    cores = cpu_count()
    free = int(cores - others_busy_cores() + 0.25)  # 1.8 free cores count as 2
    n = max(1, min(free, cores))
    return n if limit is None else max(1, min(n, limit))


def run_threads(threads: int | None = None) -> int:
    """The threads of a CPU run: `threads` when given, else $NORMNAS_THREADS, else the
    cores other processes leave free (at most torch's current setting)."""
    if threads is not None:
        return threads
    env = os.environ.get("NORMNAS_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return free_threads(limit=torch.get_num_threads())


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """torch's intra-op threads set to `threads` inside the block (None: left as they are),
    restored after. Yields the number in use."""
    before = torch.get_num_threads()
    n = before if threads is None else max(1, int(threads))
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
