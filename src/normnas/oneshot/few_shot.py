"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021).

The NB201 supernet is split on one cell edge into five sub-supernets, one per op of that
edge. Each starts as a copy of the trained one-shot supernet (weights and BN statistics)
and trains on its own with that edge fixed to its op (`NB201Supernet.fixed_ops`; the other
edges sampled as before), so the paths that disagree on the split edge stop sharing
weights. A candidate is judged by the sub-supernet whose op it has on that edge:
`FewShotSupernet` routes `set_arch`/`forward` (and every other Supernet method) there, so
the BN modes and `SupernetEvaluator` work on it unchanged.

Cost accounting (`few_shot_epochs`): a budget of E supernet epochs is spent as
E - 5s epochs of the one-shot supernet and s epochs of each sub-supernet, s = round(E·f/5)
for the fraction f (default 0.5): every epoch is one pass over the training images with one
sampled path per step, so few-shot and one-shot cost the same image passes. Each
sub-supernet trains with a fresh optimizer and its own LR schedule over its s epochs (a
warm restart from the one-shot weights), its batch order seeded `seed + 1 + k`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from normnas.data.split import DataBundle
from normnas.oneshot.supernet_nb201 import NB201Supernet
from normnas.oneshot.training import Sampling, SupernetTrainResult, train_supernet
from normnas.spaces._nb201_model import EDGES
from normnas.spaces.nb201 import OPS, NB201Arch, NB201Space
from normnas.train.config import TrainConfig

EDGE_NAMES: tuple[str, ...] = tuple(f"{dst}<-{src}" for dst, src in EDGES)
DEFAULT_FRACTION = 0.5


def parse_edge(value: Any) -> int:
    """The edge index 0-5 of an index or a name such as `3<-0`; ValueError otherwise (its
    message names the expected values; the caller names the field)."""
    if isinstance(value, str) and value.strip() in EDGE_NAMES:
        return EDGE_NAMES.index(value.strip())
    given = value  # as typed: the message quotes it (a CLI string stays a string)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(EDGES):
        return value
    raise ValueError(
        f"expected an edge of the NB201 cell, an index 0-{len(EDGES) - 1} or one of "
        f"{', '.join(EDGE_NAMES)}, got {given!r}"
    )


def few_shot_epochs(total: int, fraction: float = DEFAULT_FRACTION) -> tuple[int, int]:
    """(one-shot epochs, epochs of each of the 5 sub-supernets) for a budget of `total`
    supernet epochs, `fraction` of it spent on the sub-supernets (see the module docstring)."""
    if not 0 < fraction < 1:
        raise ValueError(f"few_shot_fraction: expected a number in (0, 1), got {fraction}")
    per_sub = max(1, round(total * fraction / len(OPS)))
    oneshot = total - len(OPS) * per_sub
    if oneshot < 1:
        raise ValueError(
            f"few_shot: {total} supernet epochs leave none for the one-shot supernet before the "
            f"split ({len(OPS)} sub-supernets x {per_sub} epochs); train at least "
            f"{len(OPS) * per_sub + 1} epochs or lower few_shot_fraction"
        )
    return oneshot, per_sub


def sub_checkpoint(path: str | Path, edge: int, op: str) -> Path:
    """The checkpoint of the sub-supernet of `op` beside the one-shot one at `path`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.fewshot{edge}-{op}{path.suffix or '.pt'}")


class FewShotSupernet(nn.Module):
    """Five NB201 sub-supernets split on `edge`; an arch is run by the one of its op there."""

    def __init__(self, subnets: Mapping[str, NB201Supernet], edge: int) -> None:
        super().__init__()
        self.edge = parse_edge(edge)
        if sorted(subnets) != sorted(OPS):
            raise ValueError(f"FewShotSupernet: expected one sub-supernet per op {list(OPS)}")
        for op, sub in subnets.items():
            if sub.fixed_ops != {self.edge: op}:
                raise ValueError(f"FewShotSupernet: the {op} sub-supernet must fix edge {edge}")
        self.subnets = nn.ModuleDict({op: subnets[op] for op in OPS})
        self.arch: NB201Arch | None = None

    # what SupernetEvaluator and the cost metrics read of a supernet
    @property
    def _first(self) -> NB201Supernet:
        return self.subnets[OPS[0]]  # type: ignore[return-value]

    @property
    def space(self) -> NB201Space:
        return self._first.space

    @property
    def num_classes(self) -> int:
        return self._first.num_classes

    @property
    def in_channels(self) -> int:
        return self._first.in_channels

    @property
    def C(self) -> int:
        return self._first.C

    @property
    def N(self) -> int:
        return self._first.N

    def owner(self, arch: Sequence[str]) -> NB201Supernet:
        """The sub-supernet that judges `arch`: the one of its op on the split edge."""
        arch = self.space.validate(arch)
        return self.subnets[arch[self.edge]]  # type: ignore[return-value]

    # -- the Supernet protocol, routed ----------------------------------------------------
    def set_arch(self, arch: Sequence[str]) -> None:
        self.arch = self.space.validate(arch)
        self.owner(self.arch).set_arch(self.arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch is None:
            raise RuntimeError("FewShotSupernet: call set_arch(arch) before forward")
        return self.owner(self.arch)(x)

    def subnet(self, arch: Sequence[str]) -> nn.Module:
        return self.owner(arch).subnet(arch)

    def path_modules(self, arch: Sequence[str]) -> list[nn.Module]:
        return self.owner(arch).path_modules(arch)

    def indicator_norms(self, arch: Sequence[str]) -> list[list[nn.Module]]:
        return self.owner(arch).indicator_norms(arch)

    def sample_arch(self, rng: np.random.Generator) -> NB201Arch:
        return self.space.sample(rng)

    def fair_archs(self, rng: np.random.Generator) -> list[NB201Arch]:
        raise TypeError(
            "FewShotSupernet is trained one sub-supernet at a time (train_few_shot), not as a whole"
        )


def split_supernet(oneshot: NB201Supernet, edge: int | str) -> FewShotSupernet:
    """Five copies of `oneshot` (weights and BN statistics), each fixing `edge` to one op."""
    if not isinstance(oneshot, NB201Supernet):
        raise ValueError(
            f"few_shot: splitting needs the NB201 supernet, got {type(oneshot).__name__}"
        )
    try:
        index = parse_edge(edge)
    except ValueError as exc:
        raise ValueError(f"few_shot: {exc}") from None
    subs = {}
    for op in OPS:
        sub = copy.deepcopy(oneshot)
        sub.fixed_ops = {index: op}
        sub.arch = None
        subs[op] = sub
    return FewShotSupernet(subs, index)


def train_few_shot(
    fewshot: FewShotSupernet,
    data: DataBundle,
    config: TrainConfig,
    sampling: Sampling = "uniform",
    checkpoint: str | Path | None = None,
) -> dict[str, SupernetTrainResult]:
    """Train each sub-supernet `config.epochs` epochs (in op order), seed `config.seed+1+k`.

    With `checkpoint` (the one-shot supernet's path), sub-supernet k checkpoints at
    `sub_checkpoint(checkpoint, edge, op)`: a rerun loads the finished ones and resumes the
    rest. Stops at the first sub-supernet whose training does not end "ok".
    """
    results: dict[str, SupernetTrainResult] = {}
    for k, op in enumerate(OPS):
        sub = fewshot.subnets[op]
        seeded = dataclasses.replace(config, seed=config.seed + 1 + k)
        path = None if checkpoint is None else sub_checkpoint(checkpoint, fewshot.edge, op)
        results[op] = train_supernet(sub, data, seeded, sampling, path)  # type: ignore[arg-type]
        if results[op].status != "ok":
            break
    return results
