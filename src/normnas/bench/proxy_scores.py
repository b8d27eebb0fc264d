"""Shipped zero-cost proxy scores of every canonical NAS-Bench-201 class, for warm-up runs.

Format (`data/nb201_proxies_cifar10.jsonl.gz`, written by benchmarks/proxy_scores_nb201.py):
JSON lines; the first is a header `{"format": FORMAT, "proxies": [...], "batch_size": ...,
"seed": ..., ...}`, then one line per class `{"arch": "|...|", "scores": {name: value},
"seconds": {name: s}, "build_s": s}`. Non-finite scores are written as null (-inf).
A bench warm-up samples N cells as a real warm-up would (uniform cells, one score per
canonical class), ranks them by the vote and charges the measured seconds of those N.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from normnas.errors import DataError
from normnas.proxies.registry import DEFAULT_PROXIES, parse_proxies
from normnas.proxies.warmup import WarmupPick, rank_picks
from normnas.spaces.nb201 import NB201Arch, NB201Space

FORMAT = "normnas-nb201-proxies/1"
DEFAULT_PROXY_FILE = "nb201_proxies_cifar10.jsonl.gz"
SCRIPT = "benchmarks/proxy_scores_nb201.py"


@dataclass(frozen=True)
class ProxyScores:
    """Scores and measured seconds per canonical class (keyed by the class's string)."""

    path: str
    header: dict[str, Any]
    proxies: tuple[str, ...]  # the proxies this run votes with (and is charged for)
    scores: dict[str, dict[str, float]]
    cost_s: dict[str, float]  # build + the voting proxies' seconds of the class
    seconds: dict[str, dict[str, float]] | None = None  # every proxy's seconds, per class
    build_s: dict[str, float] | None = None

    @classmethod
    def load(
        cls, path: str | Path | None = None, proxies: str | Sequence[str] | None = None
    ) -> ProxyScores:
        """Read `path` (JSON lines, gzip if it starts so); None reads the packaged file.

        `proxies` chooses the vote (and what is charged): None takes the default proxies
        the file has (`DEFAULT_PROXIES`), or all of the file's if it has none of them.
        """
        loaded = cls._load(path)
        if proxies is None:
            chosen = tuple(p for p in DEFAULT_PROXIES if p in loaded.proxies) or loaded.proxies
        else:
            chosen = parse_proxies(proxies)
        return loaded.select(chosen)

    def select(self, names: Sequence[str]) -> ProxyScores:
        """The same scores voting with (and charging) only `names`."""
        missing = [n for n in names if n not in self.proxies]
        if missing:
            raise DataError(
                f"{self.path}: no scores for {', '.join(missing)}; it has {', '.join(self.proxies)}"
            )
        assert self.seconds is not None and self.build_s is not None
        cost = {k: self.build_s[k] + sum(self.seconds[k][n] for n in names) for k in self.scores}
        scores = {k: {n: row[n] for n in names} for k, row in self.scores.items()}
        return ProxyScores(
            self.path, self.header, tuple(names), scores, cost, self.seconds, self.build_s
        )

    @classmethod
    def _load(cls, path: str | Path | None = None) -> ProxyScores:
        if path is None:
            ref = resources.files("normnas.bench") / "data" / DEFAULT_PROXY_FILE
            name = f"<packaged {DEFAULT_PROXY_FILE}>"
            if not ref.is_file():
                raise DataError(
                    f"{name}: no proxy scores are shipped in this install; generate them with "
                    f"`python {SCRIPT}` or pass --proxy-scores FILE"
                )
            raw = ref.read_bytes()
        else:
            name = str(path)
            try:
                raw = Path(path).read_bytes()
            except OSError as exc:
                raise DataError(f"{name}: cannot read the proxy scores ({exc.strerror})") from None
        return cls.parse(name, raw)

    @classmethod
    def parse(cls, name: str, raw: bytes) -> ProxyScores:
        try:
            text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{name}: not (gzip) JSON lines ({exc})") from None
        if not lines or lines[0].get("format") != FORMAT:
            raise DataError(f"{name}: the first line must be a header with format {FORMAT!r}")
        header = lines[0]
        proxies = tuple(header.get("proxies", ()))
        if not proxies:
            raise DataError(f"{name}: the header names no proxies")
        space = NB201Space()
        scores: dict[str, dict[str, float]] = {}
        seconds: dict[str, dict[str, float]] = {}
        build: dict[str, float] = {}
        for k, row in enumerate(lines[1:], start=2):
            try:
                key = space.to_str(space.canonical(space.from_str(row["arch"])))
                scores[key] = {p: _value(row["scores"][p]) for p in proxies}
                seconds[key] = {p: float(row["seconds"][p]) for p in proxies}
                build[key] = float(row.get("build_s", 0.0))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{name}: line {k}: not a score row ({exc!r})") from None
        if not scores:
            raise DataError(f"{name}: no score rows")
        cost = {k: build[k] + sum(seconds[k].values()) for k in scores}
        return cls(name, header, proxies, scores, cost, seconds, build)

    def warmup(self, space: NB201Space, n: int, rng: np.random.Generator) -> list[WarmupPick]:
        """The warm-up of `n` random cells of distinct classes, best vote first."""
        archs: list[NB201Arch] = []
        keys: list[str] = []
        seen: set[str] = set()
        for _ in range(max(50 * n, 1000)):
            if len(archs) >= n or len(seen) >= len(self.scores):
                break
            canon = space.canonical(space.sample(rng))
            key = space.to_str(canon)
            if key in seen:
                continue
            seen.add(key)
            if key not in self.scores:
                raise DataError(f"{self.path}: no scores for the class {key}")
            archs.append(canon)
            keys.append(key)
        rows = [self.scores[k] for k in keys]
        return rank_picks(archs, rows, [self.cost_s[k] for k in keys], self.proxies)


def _value(v: Any) -> float:
    return -math.inf if v is None else float(v)
