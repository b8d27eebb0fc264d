"""The table a run uses: a file the user names, else the cache, else profiled now.

`table_for(space, target, path)`: with `path`, that file, refused (one line naming what
differs) unless its key matches this space, target, threads, batch, runtime versions and
CPU; without, the cached table of that key under `cache_dir()` ($NORMNAS_CACHE/latency,
default ~/.cache/normnas/latency), profiled on first use (a note says so, and how long it
took) and saved there for the next run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from normnas.latency.profile import DEFAULT_CLASSES, DEFAULT_SHAPE, profile, table_key
from normnas.latency.table import LatencyTable, cache_path
from normnas.latency.targets import Target
from normnas.spaces.base import SearchSpace


def table_for(
    space: SearchSpace,
    target: Target,
    path: str | Path | None = None,
    shape: Sequence[int] = DEFAULT_SHAPE,
    classes: int = DEFAULT_CLASSES,
) -> LatencyTable:
    key = table_key(space, target, shape, classes)
    if path is not None:
        table = LatencyTable.read(path)
        table.check(key)
        return table
    cached = cache_path(key)
    if cached.exists():
        table = LatencyTable.read(cached)
        table.check(key)
        return table
    sys.stderr.write(
        f"note: no latency table for {key['space']} on {target.label}: profiling it now "
        f"(saved to {cached})\n"
    )
    table = profile(space, target, shape, classes)
    if table.warning:
        sys.stderr.write(table.warning + "\n")
    table.save(cached)
    sys.stderr.write(f"note: profiled in {table.profile_s:.0f} s\n")
    return table


PACKAGED_NB201 = "nb201_latency_torch_t1_b1.json"  # in normnas/bench/data


def packaged_table() -> Path:
    """The NB201 table that ships with the package (torch eager, folded, 1 thread, batch 1)."""
    return Path(__file__).resolve().parents[1] / "bench" / "data" / PACKAGED_NB201


def stored_table(
    space: SearchSpace,
    target: Target,
    path: str | Path | None = None,
    shape: Sequence[int] = DEFAULT_SHAPE,
    classes: int = DEFAULT_CLASSES,
) -> LatencyTable:
    """A table without profiling: `path`, else the cache, else the packaged NB201 table when
    its key matches; LatencyTableError (one line: what to run) when there is none."""
    from normnas.latency.table import LatencyTableError

    key = table_key(space, target, shape, classes)
    if path is not None:
        table = LatencyTable.read(path)
        table.check(key)
        return table
    for candidate in (cache_path(key), packaged_table()):
        if candidate.exists():
            table = LatencyTable.read(candidate)
            same = ("space", "target", "threads", "batch")
            if candidate == cache_path(key) or all(table.key.get(f) == key[f] for f in same):
                table.check(key)
                return table
    raise LatencyTableError(
        f"no latency table for {key['space']} on {target.label}: run `normnas latency "
        f"profile --space {key['space']} --target {target.name} --threads {target.threads} "
        f"--batch {target.batch}` or give --table"
    )
