"""Synthetic NAS-Bench-201 tables in the packaged format, written on the fly."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest

from normnas.bench.table import COLUMNS
from normnas.spaces.nb201 import OPS, NB201Space

SPACE = NB201Space()
HEADER = ",".join(COLUMNS)


def additive_valid(arch: tuple[str, ...], seed: int = 7) -> float:
    """A purely additive landscape: a fixed random effect per (edge, op), in percent."""
    effects = np.random.default_rng(seed).uniform(0.0, 8.0, size=(6, len(OPS)))
    return 40.0 + float(sum(effects[e, OPS.index(op)] for e, op in enumerate(arch)))


def write_table(
    path: Path,
    archs: Iterable[tuple[str, ...]] | None = None,
    valid: Callable[[tuple[str, ...]], float] = additive_valid,
    epoch_s: Callable[[tuple[str, ...]], float] = lambda a: 10.0,
) -> Path:
    """Rows `arch, v12, v200, test, time`; test = 100 - v12 so a search reading it would lose."""
    lines = [HEADER]
    for arch in SPACE.all() if archs is None else archs:
        v = valid(arch)
        lines.append(f"{SPACE.to_str(arch)},{v:.4f},{v:.4f},{100 - v:.4f},{epoch_s(arch):.4f}")
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="session")
def synthetic_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 15,625 cells, additive valid accuracy, 10 s per epoch (120 s per query)."""
    return write_table(tmp_path_factory.mktemp("nb201") / "synthetic.csv.gz")
