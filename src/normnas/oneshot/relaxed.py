"""The continuous relaxation of a supernet that gradient-based NAS trains (DARTS, GDAS, DrNAS).

A relaxed supernet has a list of *decisions* (an NB201 edge, a macro block's norm, ...),
each with named options. Its forward takes one weight vector per decision and mixes the
options' outputs with it; the architecture weights themselves live outside the module (in
`normnas.oneshot.gradient`), so `parameters()` are the network weights only and the two
never share an optimizer. With one-hot weights the forward is the sub-network `subnet(arch)`
(`space.build(arch)` with the supernet's weights) of the chosen options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn


@dataclass(frozen=True)
class Decision:
    """One relaxed choice: its name and its options' readable names, in weight order.

    `zero`: the index of the option that is the zero op (NB201's `none` edge), which
    DARTS's derivation leaves out; None where no option is (a macro norm `none` is a real
    choice: the identity)."""

    name: str
    options: tuple[str, ...]
    zero: int | None = None


class RelaxedSupernet(Protocol):
    """What the gradient methods need of a relaxed supernet (an `nn.Module`)."""

    space: Any
    decisions: tuple[Decision, ...]

    def __call__(
        self, x: torch.Tensor, weights: Sequence[torch.Tensor], active: Sequence[int] | None = None
    ) -> torch.Tensor: ...

    def parameters(self) -> Any: ...

    def arch_of(self, choice: Sequence[int]) -> Any: ...

    def choice_of(self, arch: Any) -> list[int]: ...

    def subnet(self, arch: Any) -> nn.Module: ...


def check_weights(
    decisions: Sequence[Decision],
    weights: Sequence[torch.Tensor],
    active: Sequence[int] | None,
) -> None:
    """A one-line ValueError naming the decision whose weights or active index are wrong."""
    if len(weights) != len(decisions):
        raise ValueError(f"weights: expected {len(decisions)} vectors (one per decision), "
                         f"got {len(weights)}")  # fmt: skip
    for d, w in zip(decisions, weights, strict=True):
        if w.ndim != 1 or w.numel() != len(d.options):
            raise ValueError(f"weights of {d.name!r}: expected a vector of {len(d.options)} "
                             f"({', '.join(d.options)}), got shape {tuple(w.shape)}")  # fmt: skip
    if active is not None:
        if len(active) != len(decisions):
            raise ValueError(f"active: expected {len(decisions)} indices, got {len(active)}")
        for d, a in zip(decisions, active, strict=True):
            if not 0 <= int(a) < len(d.options):
                raise ValueError(f"active of {d.name!r}: {a} is not an option index "
                                 f"(0..{len(d.options) - 1})")  # fmt: skip


def mix(
    outputs: Sequence[torch.Tensor | None],
    weight: torch.Tensor,
    active: int | None,
    like: torch.Tensor,
) -> torch.Tensor:
    """sum_k weight[k] * outputs[k] (None: a zero output); with `active`, only that option's
    output was computed and the others add their zero-valued weights (GDAS's
    straight-through form, so their gradients flow)."""
    if active is not None:
        out = outputs[active]
        total = weight[active] * (torch.zeros_like(like) if out is None else out)
        rest = weight.sum() - weight[active]
        return total + rest
    total: torch.Tensor | None = None
    for k, out in enumerate(outputs):
        if out is None:
            continue
        term = weight[k] * out
        total = term if total is None else total + term
    return torch.zeros_like(like) if total is None else total


def fill_missing_state(net: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` plus, for keys the relaxed supernet lacks (running statistics of BNs that keep
    none, gamma/beta of BNs without affine), the stand-alone network's initial values."""
    out = dict(state)
    for key, value in net.state_dict().items():
        out.setdefault(key, value.detach().clone())
    return out


def mix_calls(
    calls: Sequence[Callable[[], torch.Tensor]],
    weight: torch.Tensor,
    active: int | None,
) -> torch.Tensor:
    """`mix` of options computed on demand: sum_k weight[k] * calls[k](); with `active`, only
    that call runs and the other weights are added (zero-valued under GDAS's hard weights,
    so their gradients still flow)."""
    if active is not None:
        return weight[active] * calls[active]() + (weight.sum() - weight[active])
    total = weight[0] * calls[0]()
    for k in range(1, len(calls)):
        total = total + weight[k] * calls[k]()
    return total


def drop_running_stats(module: nn.Module) -> None:
    """Make every BN of `module` normalize by batch statistics, in train and eval mode."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats = False
            m.register_buffer("running_mean", None)
            m.register_buffer("running_var", None)
            m.register_buffer("num_batches_tracked", None)
