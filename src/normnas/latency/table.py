"""A latency table: the measured entries of a space's units for one target on one machine.

A small JSON file. Its `key` says what the figures are valid for: the space (and its
spec), the input shape and classes, the target, threads, batch, the runtime versions and
the CPU model. A table is reused only when every field of its key matches the run's; else
it is refused with one line naming the fields that differ. It also holds the fit of the
predictor (see `normnas.latency.predict`), the timing protocol, the machine's load while
profiling and the seconds profiling took.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normnas.errors import UserError

FORMAT = 1


class LatencyTableError(UserError):
    """A table that cannot be read, or that was profiled for something else."""


@dataclass
class LatencyTable:
    key: dict[str, Any]
    entries: dict[str, float]  # unit key -> ms (the unit's time less an empty graph's)
    fit: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None
    profile_s: float = 0.0
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "key": self.key,
            "fit": self.fit,
            "protocol": self.protocol,
            "load": self.load,
            "warning": self.warning,
            "profile_s": round(self.profile_s, 1),
            "entries": {k: round(v, 5) for k, v in sorted(self.entries.items())},
        }

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, out)  # whole or not at all: a cache read beside us sees either
        self.path = str(out)
        return out

    @classmethod
    def read(cls, path: str | Path) -> LatencyTable:
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LatencyTableError(f"latency table {p}: no such file") from None
        except (OSError, ValueError) as e:
            raise LatencyTableError(f"latency table {p}: not readable JSON ({e})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise LatencyTableError(f"latency table {p}: expected a normnas table, format {FORMAT}")
        try:
            entries = {str(k): float(v) for k, v in raw["entries"].items()}
            key = dict(raw["key"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise LatencyTableError(f"latency table {p}: `key` or `entries` missing") from None
        return cls(
            key=key, entries=entries, fit=dict(raw.get("fit") or {}),
            protocol=dict(raw.get("protocol") or {}), load=dict(raw.get("load") or {}),
            warning=raw.get("warning"), profile_s=float(raw.get("profile_s") or 0.0),
            path=str(p),
        )  # fmt: skip

    def check(self, wanted: dict[str, Any]) -> None:
        """LatencyTableError (one line, naming what differs) unless the key is `wanted`."""
        differ = [
            f"{name} {_show(self.key.get(name))} (wanted {_show(wanted.get(name))})"
            for name in sorted(set(wanted) | set(self.key))
            if _norm(self.key.get(name)) != _norm(wanted.get(name))
        ]
        if differ:
            where = self.path or "latency table"
            raise LatencyTableError(
                f"latency table {where} was profiled for other conditions: " + "; ".join(differ)
            )


def _norm(value: Any) -> Any:
    return json.loads(json.dumps(value))  # tuples as lists, as the file has them


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)[:120]
    return str(value)


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_norm(key), sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """Where profiled tables are kept: $NORMNAS_CACHE/latency, default ~/.cache/normnas/latency."""
    root = os.environ.get("NORMNAS_CACHE", str(Path.home() / ".cache" / "normnas"))
    return Path(root) / "latency"


def cache_path(key: dict[str, Any]) -> Path:
    """The cached table of `key`: named by space, target, threads, batch and a digest."""
    name = f"{key['space']}-{key['target']}-t{key['threads']}-b{key['batch']}-{key_digest(key)}"
    return cache_dir() / f"{name}.json"
