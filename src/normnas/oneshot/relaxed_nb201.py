"""The relaxed NAS-Bench-201 supernet: every edge a softmax-weighted mix of its five ops.

`RelaxedNB201` is `NB201Supernet` (the same modules, names and `subnet`) with a forward that
takes one weight vector per edge, shared by every cell, as the benchmark's DARTS, GDAS and
DrNAS search cells do: node j sums, over its incoming edges, sum_k w_k * op_k(node_i), where
`none` contributes zero. With `active` (GDAS) only the chosen op of each edge runs.

BN of the searched cells (the ops' BNs): `affine=False, track_running_stats=False` are
DARTS's and NAS-Bench-201's settings (no gamma/beta, batch statistics in train and eval).
Both are options because they change what the architecture weights learn: an affine BN
can scale an op's output and so compete with its architecture weight. Without running
statistics, `subnet(arch)` holds the BNs' initial statistics (mean 0, var 1): recalibrate
them (`normnas.nn.recalibrate_bn`) before evaluating it in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from normnas.oneshot.relaxed import (
    Decision,
    check_weights,
    drop_running_stats,
    fill_missing_state,
    mix,
)
from normnas.oneshot.supernet_nb201 import NB201Supernet, SuperCell
from normnas.spaces._nb201_model import EDGES
from normnas.spaces.nb201 import OPS, NB201Arch, NB201Space

DECISIONS: tuple[Decision, ...] = tuple(
    Decision(f"edge {dst}<-{src}", OPS, zero=OPS.index("none")) for dst, src in EDGES
)


class RelaxedNB201(NB201Supernet):
    """NB201's relaxed search network; see the module docstring."""

    decisions = DECISIONS

    def __init__(
        self,
        space: NB201Space | None = None,
        num_classes: int = 10,
        in_channels: int = 3,
        C: int = 16,
        N: int = 5,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> None:
        super().__init__(space, num_classes, in_channels, C, N, affine=affine)
        self.track_running_stats = track_running_stats
        if not track_running_stats:
            for cell in self.cells:
                if isinstance(cell, SuperCell):
                    drop_running_stats(cell)

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        weights: Sequence[torch.Tensor] | None = None,
        active: Sequence[int] | None = None,
    ) -> torch.Tensor:
        if weights is None:  # the weight-sharing protocol: the path set by set_arch
            return super().forward(x)
        check_weights(self.decisions, weights, active)
        x = self.stem(x)
        for cell in self.cells:
            x = self._cell(cell, x, weights, active) if isinstance(cell, SuperCell) else cell(x)
        x = self.lastact(x)
        return self.classifier(self.global_pooling(x).flatten(1))

    @staticmethod
    def _cell(
        cell: SuperCell,
        x: torch.Tensor,
        weights: Sequence[torch.Tensor],
        active: Sequence[int] | None,
    ) -> torch.Tensor:
        nodes: list[torch.Tensor] = [x]
        for node in (1, 2, 3):
            total: torch.Tensor | None = None
            for e, (dst, src) in enumerate(EDGES):
                if dst != node:
                    continue
                a = None if active is None else int(active[e])
                ops = cell.edges[e]
                outs = [
                    None if op == "none" or (a is not None and k != a) else ops[op](nodes[src])
                    for k, op in enumerate(OPS)
                ]
                term = mix(outs, weights[e], a, nodes[src])
                total = term if total is None else total + term
            assert total is not None
            nodes.append(total)
        return nodes[3]

    def arch_of(self, choice: Sequence[int]) -> NB201Arch:
        if len(choice) != len(EDGES):
            raise ValueError(f"choice: expected {len(EDGES)} op indices, got {len(choice)}")
        return self.space.validate(tuple(OPS[int(i)] for i in choice))

    def choice_of(self, arch: Sequence[str]) -> list[int]:
        return [OPS.index(op) for op in self.space.validate(arch)]

    def subnet(self, arch: Sequence[str]) -> nn.Module:
        """`space.build(arch)` with this supernet's weights (initial BN statistics where the
        searched cells keep none)."""
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.num_classes, self.in_channels, C=self.C, N=self.N)
        state = fill_missing_state(net, self.subnet_state_dict(arch, net))
        net.load_state_dict(state, strict=True)
        return net.to(next(self.parameters()).device)
