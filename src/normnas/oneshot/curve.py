"""Train one supernet to several lengths for the cost of the longest: warm restarts.

`train_lengths(supernet, data, config, (20, 50, 100, 200), stem)` trains segment after
segment (20, then 30 more, 50 more, 100 more epochs), each a `train_supernet` run with its
own cosine schedule over the segment, warm-started from the previous segment's finished
checkpoint (weights, BN statistics, optimizer momentum, RNG states). Why restarts rather
than one cosine over the longest length with snapshots on the way: every length's
supernet then ends annealed, as a supernet trained for that length alone would (at epoch
20 of a 200-epoch cosine the learning rate is still 98% of its peak, which no user would
score), and the first length is exactly the plain `train_supernet` of that many epochs.
SGDR (Loshchilov & Hutter, 2017) is the precedent for restarts that lengthen.

Each segment checkpoints every epoch to `<stem>-e<LENGTH>.pt`; a rerun loads the finished
segments and resumes the unfinished one, so a killed curve ends with the same weights as
an uninterrupted one (bit for bit on CPU).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from normnas.data.split import DataBundle
from normnas.oneshot.base import Supernet
from normnas.oneshot.training import (
    Sampling,
    SupernetEpoch,
    SupernetTrainResult,
    train_supernet,
)
from normnas.train.config import TrainConfig


@dataclass
class CurvePoint:
    """The supernet after `epochs` epochs in all (it is in the supernet passed in)."""

    epochs: int
    checkpoint: Path
    segment: SupernetTrainResult  # this segment's training (its own epochs and seconds)
    time_s: float  # training seconds of every segment so far
    train_loss: float | None  # the last epoch's mean training loss


def length_checkpoint(stem: str | Path, epochs: int) -> Path:
    """Where the segment that ends at `epochs` checkpoints."""
    stem = Path(stem)
    return stem.with_name(f"{stem.name}-e{epochs}.pt")


def check_lengths(lengths: Sequence[int]) -> list[int]:
    """The lengths as increasing positive integers; ValueError naming the first bad one."""
    out = [int(n) for n in lengths]
    if not out:
        raise ValueError("lengths: expected at least one number of epochs")
    for before, n in zip([0, *out], out, strict=False):
        if n <= before:
            raise ValueError(f"lengths: expected increasing epochs >= 1, got {out}")
    return out


def train_lengths(
    supernet: Supernet,
    data: DataBundle,
    config: TrainConfig,
    lengths: Sequence[int],
    stem: str | Path,
    sampling: Sampling = "uniform",
    callback: Callable[[SupernetEpoch], bool | None] | None = None,
) -> Iterator[CurvePoint]:
    """Yield a `CurvePoint` after each length, the supernet then holding that length's
    weights (score it before asking for the next). `config.epochs` is unused: the segment
    lengths are the differences of `lengths`. A segment that does not end "ok" (diverged,
    timeout, stopped by `callback`) ends the iteration without yielding its point."""
    total_s, done, previous = 0.0, 0, None
    for epochs in check_lengths(lengths):
        path = length_checkpoint(stem, epochs)
        segment = dataclasses.replace(config, epochs=epochs - done)
        result = train_supernet(
            supernet, data, segment, sampling, path, callback=callback, warm_start=previous
        )
        if result.status != "ok" or result.epochs_run < segment.epochs:
            return
        total_s += result.time_s
        last = result.history[-1].train_loss if result.history else None
        yield CurvePoint(epochs, path, result, total_s, last)
        done, previous = epochs, path
