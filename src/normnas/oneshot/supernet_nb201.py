"""The NAS-Bench-201 supernet: every cell edge holds the benchmark's five ops, shared weights.

The supernet is `NB201Network` with each `InferCell` replaced by a cell whose 6 edges hold
one module per op (built by the very `make_op` the benchmark network uses, so a module of
the supernet and the module `space.build(arch)` makes for that edge have the same
parameters and buffers, name for name). The stem, the two reduction blocks, the last BN and
the classifier are shared by every sub-network. `set_arch(arch)` picks one op per edge
(the same choice in every cell, as the benchmark's cell space defines) and `forward` then
runs exactly the operations `NB201Network(arch)` runs, in the same order, so the outputs
are equal bit for bit when the weights are.

`fixed_ops` ({edge index: op}, empty by default) makes it a few-shot sub-supernet
(`normnas.oneshot.few_shot`): `sample_arch` and `fair_archs` then keep those edges' ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from normnas.nn.batchnorm import is_batchnorm
from normnas.spaces._nb201_model import EDGES, make_op, skeleton
from normnas.spaces.nb201 import OPS, NB201Arch, NB201Space


def _candidate_op(name: str, channels: int, affine: bool) -> nn.Module:
    """The benchmark's op module; without affine its BN drops gamma/beta (NB201's own
    supernets train cell ops with `affine=False`)."""
    op = make_op(name, channels)
    if not affine and isinstance(op, nn.Sequential):
        for i, module in enumerate(op):
            if isinstance(module, nn.BatchNorm2d):
                op[i] = nn.BatchNorm2d(channels, affine=False, track_running_stats=True)
    return op


class SuperCell(nn.Module):
    """A normal cell holding, per edge, a module for every op but `none` (which has none)."""

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: _candidate_op(op, channels, affine) for op in OPS if op != "none"})
            for _ in EDGES
        )

    def forward(self, x: torch.Tensor, arch: Sequence[str]) -> torch.Tensor:
        # the same sums, in the same order, as InferCell (left to right over edges in order)
        nodes: list[torch.Tensor] = [x]
        for node in (1, 2, 3):
            terms = [
                self.edges[e][op](nodes[src])
                for e, ((dst, src), op) in enumerate(zip(EDGES, arch, strict=True))
                if dst == node and op != "none"
            ]
            total = torch.zeros_like(x) if not terms else terms[0]
            for term in terms[1:]:
                total = total + term
            nodes.append(total)
        return nodes[3]


class NB201Supernet(nn.Module):
    """Weight-sharing supernet of `NB201Space` (C channels, N cells per stage).

    `affine=False` removes gamma/beta from the BNs of the cell ops (the shared candidates);
    the stem, reduction blocks and last BN keep theirs, as in NAS-Bench-201's supernets.
    `subnet(arch)` then sets the stand-alone network's BN gamma = 1, beta = 0, which
    computes the same function.
    """

    def __init__(
        self,
        space: NB201Space | None = None,
        num_classes: int = 10,
        in_channels: int = 3,
        C: int = 16,
        N: int = 5,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.space = space if space is not None else NB201Space()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.C, self.N, self.affine = C, N, affine
        self.stem, cells, c_prev = skeleton(C, N, in_channels, lambda c: SuperCell(c, affine))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)
        self.arch: NB201Arch | None = None
        self.fixed_ops: dict[int, str] = {}

    def _fix(self, arch: Sequence[str]) -> NB201Arch:
        ops = list(arch)
        for edge, op in self.fixed_ops.items():
            ops[edge] = op
        return tuple(ops)  # type: ignore[return-value]

    def sample_arch(self, rng: np.random.Generator) -> NB201Arch:
        """A uniform architecture of the space, the `fixed_ops` edges kept."""
        return self._fix(self.space.sample(rng))

    # -- the Supernet protocol ------------------------------------------------------------
    def set_arch(self, arch: Sequence[str]) -> None:
        self.arch = self.space.validate(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch is None:
            raise RuntimeError("NB201Supernet: call set_arch(arch) before forward")
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, self.arch) if isinstance(cell, SuperCell) else cell(x)
        x = self.lastact(x)
        return self.classifier(self.global_pooling(x).flatten(1))

    def subnet(self, arch: Sequence[str]) -> nn.Module:
        """`space.build(arch)` (same C, N, classes, channels) with copied weights and BN stats."""
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.num_classes, self.in_channels, C=self.C, N=self.N)
        net.load_state_dict(self.subnet_state_dict(arch, net), strict=True)
        return net.to(next(self.parameters()).device)

    def subnet_state_dict(
        self, arch: Sequence[str], reference: nn.Module | None = None
    ) -> dict[str, torch.Tensor]:
        """The state dict of `space.build(arch)` holding this supernet's tensors (cloned).

        Supernet key `cells.i.edges.e.<op>.k` becomes `cells.i.ops.j.k`, j counting the
        edges of cell i whose op is not `none`; all other keys are the same. Without affine,
        `reference` (the built network) supplies the BN gamma = 1 / beta = 0 it lacks.
        """
        arch = self.space.validate(arch)
        slot = {e: j for j, e in enumerate(e for e, op in enumerate(arch) if op != "none")}
        out: dict[str, torch.Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if parts[0] == "cells" and parts[2] == "edges":
                edge, op = int(parts[3]), parts[4]
                if arch[edge] != op:
                    continue
                key = ".".join(["cells", parts[1], "ops", str(slot[edge]), *parts[5:]])
            out[key] = value.detach().clone()
        if not self.affine:
            if reference is None:
                reference = self.space.build(
                    arch, self.num_classes, self.in_channels, C=self.C, N=self.N
                )
            ref = reference.state_dict()
            for key in set(ref) - set(out):
                if key.endswith(".weight"):
                    out[key] = torch.ones_like(ref[key])
                elif key.endswith(".bias"):
                    out[key] = torch.zeros_like(ref[key])
        return out

    def path_modules(self, arch: Sequence[str]) -> list[nn.Module]:
        """The shared modules (stem, reductions, last BN, pooling, classifier) and each
        cell's chosen op modules, in forward order."""
        arch = self.space.validate(arch)
        modules: list[nn.Module] = [self.stem]
        for cell in self.cells:
            if isinstance(cell, SuperCell):
                modules.extend(cell.edges[e][op] for e, op in enumerate(arch) if op != "none")
            else:
                modules.append(cell)
        modules.extend([self.lastact, self.global_pooling, self.classifier])
        return modules

    def indicator_norms(self, arch: Sequence[str]) -> list[list[nn.Module]]:
        """Per cell and edge (cell-major, 6 x 3N lists): [the op's BN] for the conv ops,
        [] for none, skip_connect and avg_pool_3x3 (they have no BN)."""
        arch = self.space.validate(arch)
        out: list[list[nn.Module]] = []
        for cell in self.cells:
            if not isinstance(cell, SuperCell):
                continue
            for e, op in enumerate(arch):
                module = cell.edges[e][op] if op != "none" else None
                bns = [m for m in module.modules() if is_batchnorm(m)] if module else []
                out.append(bns[-1:])
        return out

    def fair_archs(self, rng: np.random.Generator) -> list[NB201Arch]:
        """FairNAS: 5 archs; on every edge they take the 5 ops in a random permutation."""
        perms = [rng.permutation(len(OPS)) for _ in EDGES]
        return [self._fix(tuple(OPS[int(perm[k])] for perm in perms)) for k in range(len(OPS))]
