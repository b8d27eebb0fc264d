"""NAS-Bench-201 as a table: load a CSV(.gz), answer queries as an Evaluator.

The format is the one of the shipped `data/nb201_cifar10.csv.gz` (see
`data/NB201_README.md`): columns `arch, valid_acc_12ep, valid_acc_200ep, test_acc_200ep,
train_time_per_epoch_s`, accuracies in percent, one row per cell.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from normnas.search.result import ReportFn, TrialResult
from normnas.spaces.nb201 import NB201Arch, NB201Space

COLUMNS: tuple[str, ...] = (
    "arch",
    "valid_acc_12ep",
    "valid_acc_200ep",
    "test_acc_200ep",
    "train_time_per_epoch_s",
)
ACCURACY_COLUMNS = ("valid_acc_12ep", "valid_acc_200ep", "test_acc_200ep")
QUERY_EPOCHS = 12  # a query returns valid_acc_12ep and costs 12 epochs of training
DEFAULT_TABLE = "nb201_cifar10.csv.gz"


class TableError(ValueError):
    """A table file that is not in the NAS-Bench-201 CSV format; the message is one line."""


class PartialTableWarning(UserWarning):
    """A table without a row for some classes of cells: results describe part of the space."""


@dataclass(frozen=True)
class NB201Table:
    """One row per cell: the search reads `valid_acc_12ep`; `test_acc_200ep` is for reports."""

    path: str
    archs: tuple[NB201Arch, ...]
    valid_acc_12ep: np.ndarray
    valid_acc_200ep: np.ndarray
    test_acc_200ep: np.ndarray
    train_time_per_epoch_s: np.ndarray
    rows: dict[NB201Arch, int]

    @classmethod
    def load(cls, path: str | Path | None = None) -> NB201Table:
        """Read `path` (CSV, gzip if it ends in .gz); None reads the packaged CIFAR-10 table."""
        if path is None:
            ref = resources.files("normnas.bench") / "data" / DEFAULT_TABLE
            name, raw = f"<packaged {DEFAULT_TABLE}>", ref.read_bytes()
        else:
            name = str(path)
            try:
                raw = Path(path).read_bytes()
            except OSError as exc:
                raise TableError(f"{name}: cannot read the table ({exc.strerror})") from None
        return cls._parse(name, raw)

    @classmethod
    def _parse(cls, name: str, raw: bytes) -> NB201Table:
        try:
            text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            lines = io.StringIO(text.decode("utf-8"))
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise TableError(f"{name}: not a (gzip) UTF-8 CSV file ({exc})") from None
        reader = csv.reader(lines)
        header = next(reader, None)
        if header is None:
            raise TableError(f"{name}: empty file; expected columns {', '.join(COLUMNS)}")
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise TableError(
                f"{name}: missing column {missing[0]!r}; expected {', '.join(COLUMNS)}"
            )
        where = [header.index(c) for c in COLUMNS]
        space = NB201Space()
        archs: list[NB201Arch] = []
        values: list[list[float]] = []
        rows: dict[NB201Arch, int] = {}
        for line_no, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(header):
                raise TableError(
                    f"{name}: line {line_no} has {len(record)} fields, the header {len(header)}"
                )
            cells = [record[i].strip() for i in where]
            try:
                arch = space.from_str(cells[0])
            except ValueError:
                raise TableError(
                    f"{name}: line {line_no}, column 'arch': {cells[0]!r} is not a "
                    "NAS-Bench-201 cell string"
                ) from None
            if arch in rows:
                raise TableError(
                    f"{name}: line {line_no}, column 'arch': {cells[0]} repeats line "
                    f"{rows[arch] + 2}"
                )
            row = [
                _number(name, line_no, col, cell)
                for col, cell in zip(COLUMNS[1:], cells[1:], strict=True)
            ]
            rows[arch] = len(archs)
            archs.append(arch)
            values.append(row)
        if not archs:
            raise TableError(f"{name}: no rows")
        data = np.asarray(values, dtype=np.float64)
        return cls(name, tuple(archs), *(data[:, k].copy() for k in range(4)), rows)

    def __len__(self) -> int:
        return len(self.archs)

    def row(self, arch: Sequence[str] | str) -> int | None:
        """Row index of a cell (tuple of ops or benchmark string); None when absent."""
        key = NB201Space().from_str(arch) if isinstance(arch, str) else tuple(arch)
        return self.rows.get(key)  # type: ignore[arg-type]

    def query_cost_s(self, row: int) -> float:
        return QUERY_EPOCHS * float(self.train_time_per_epoch_s[row])

    def coverage(self) -> tuple[int, int]:
        """(classes of equivalent cells with a row here, classes in the whole space).

        Classes, not cells: a missing cell is answered by an equivalent one's row (see
        `TableEvaluator`), so only a class without any row is out of a search's reach.
        """
        space = NB201Space()
        present = {space.canonical(a) for a in self.archs}
        return len(present), len({space.canonical(a) for a in space.all()})

    def coverage_warning(self) -> str | None:
        """One line when the table lacks whole classes of cells (None when it has them all):
        a search on it can never pick those, so its result is not the full benchmark's."""
        classes, total = self.coverage()
        if classes == total:
            return None
        return (
            f"{self.path}: partial table: {len(self):,} of the {len(NB201Space()):,} "
            f"NAS-Bench-201 cells, {classes:,} of the {total:,} classes of equivalent cells "
            f"({100 * classes / total:.1f}%); searches cannot pick the missing ones, so "
            "the result is not comparable with the full benchmark's"
        )


def _number(name: str, line_no: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise TableError(
            f"{name}: line {line_no}, column {column!r}: {cell!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise TableError(f"{name}: line {line_no}, column {column!r}: {cell!r} is not finite")
    if column in ACCURACY_COLUMNS and not 0.0 <= value <= 100.0:
        raise TableError(
            f"{name}: line {line_no}, column {column!r}: {value:g} is not a percentage in [0, 100]"
        )
    if column == "train_time_per_epoch_s" and value <= 0.0:
        raise TableError(f"{name}: line {line_no}, column {column!r}: {value:g} is not > 0 s")
    return value


class TableEvaluator:
    """Answers a query from the table: accuracy = valid_acc_12ep / 100, at 12 epochs' cost.

    A cell the table lacks is answered by a cell of the same canonical class that it has
    (they compute the same function); with none, the query fails at zero cost. The official
    tables cover all 15,625 cells, so that only happens with partial custom tables.
    `extra` holds the table row and `test_acc_200ep` for reports; samplers never read it.
    params, FLOPs and MACs are those of the benchmark's network for CIFAR-10 (32 x 32, 10
    classes), computed by formula (`NB201Space.param_count`, `op_count`).
    """

    def __init__(self, table: NB201Table, space: NB201Space | None = None) -> None:
        self.table = table
        self.space = space or NB201Space()
        self._by_class: dict[NB201Arch, int] | None = None

    def resolve(self, arch: Sequence[str]) -> int | None:
        """The table row answering `arch` (its own row, else an equivalent cell's row)."""
        row = self.table.rows.get(tuple(arch))  # type: ignore[arg-type]
        if row is not None:
            return row
        if self._by_class is None:
            by_class: dict[NB201Arch, int] = {}
            for r, a in enumerate(self.table.archs):
                by_class.setdefault(self.space.canonical(a), r)
            self._by_class = by_class
        return self._by_class.get(self.space.canonical(arch))

    def evaluate(
        self, arch: Sequence[str], fidelity: int | None = None, report: ReportFn | None = None
    ) -> TrialResult:
        row = self.resolve(arch)
        if row is None:
            return TrialResult(
                status="failed",
                error=f"{self.space.to_str(arch)} (and every equivalent cell) is not in "
                f"{self.table.path}",
            )
        t = self.table
        flops, macs = self.space.op_count(arch)  # by formula: a query stays instant
        return TrialResult(
            status="ok",
            accuracy=float(t.valid_acc_12ep[row]) / 100.0,
            params=self.space.param_count(arch),
            flops=flops,
            macs=macs,
            cost_s=t.query_cost_s(row),
            extra={"row": row, "test_acc_200ep": float(t.test_acc_200ep[row])},
        )
