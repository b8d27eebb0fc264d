"""The Supernet contract: one weight-sharing network per search space.

A supernet holds every choice of its space; `set_arch(arch)` activates one path and
`forward(x)` then computes exactly what `space.build(arch)` computes when that network is
given the supernet's (shared) weights. `subnet(arch)` returns that network as a stand-alone
module with copied weights.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from normnas.spaces.base import Arch, SearchSpace


@runtime_checkable
class Supernet(Protocol):
    """What SPOS training, the BN modes, the BN-scale indicator and the evaluators rely on."""

    space: SearchSpace
    num_classes: int
    in_channels: int

    def set_arch(self, arch: Arch) -> None:
        """Activate `arch`'s path: the next `forward` runs only its modules."""
        ...

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def subnet(self, arch: Arch) -> nn.Module:
        """`space.build(arch)` with the supernet's weights (and norm statistics) copied in."""
        ...

    def path_modules(self, arch: Arch) -> list[nn.Module]:
        """Every module `arch`'s path runs (its norms among them), for BN handling."""
        ...

    def indicator_norms(self, arch: Arch) -> list[list[nn.Module]]:
        """Per edge/block on `arch`'s path: the BN layers whose |gamma| score it (BN-NAS:
        the last BN of each op); an empty list where the choice has no BN."""
        ...

    def fair_archs(self, rng: np.random.Generator) -> list[Arch]:
        """FairNAS: k architectures that together use each choice of every decision once."""
        ...
