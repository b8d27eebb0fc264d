"""Deriving the architecture from a trained relaxed supernet: argmax, or DARTS-PT.

`argmax` keeps each decision's largest weight (the zero op `none` excluded when the method says so).
`pt` is DARTS-PT's perturbation-based selection (Wang et al., 2021): the architecture
weights are unreliable judges of op strength (they favour skip connections), so for each
decision, in a seeded random order, every remaining option is removed in turn (its weight
zeroed, the rest renormalised) and the supernet's validation accuracy measured; the option
whose removal costs most is kept, the decision fixed to it, and the network weights tuned
for `pt_tune_epochs` before the next decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from normnas.oneshot.gradient_options import GradientOptions


def _accuracy_loss(
    relaxed: nn.Module, split: Any, weights: Sequence[torch.Tensor], batch_size: int,
    device: torch.device, active: Sequence[int] | None = None, max_batches: int | None = None,
) -> tuple[float, float]:  # fmt: skip
    """(accuracy, mean loss) of the relaxed network with fixed weights on `split`."""
    was = relaxed.training
    relaxed.eval()
    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for b, (x, y) in enumerate(split.batches(max(batch_size, 256), device=device)):
            if max_batches is not None and b >= max_batches:
                break
            out = relaxed(x, weights, active)
            loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
    relaxed.train(was)
    return correct / max(total, 1), loss_sum / max(total, 1)


def derive_choice(relaxed: Any, weights: Sequence[torch.Tensor], exclude_none: bool) -> list[int]:
    """The argmax option of each decision (the zero op left out when `exclude_none`; a
    macro norm named `none` is the identity, a real choice, and is never left out)."""
    choice = []
    for d, w in zip(relaxed.decisions, weights, strict=True):
        w = w.detach().clone()
        if exclude_none and d.zero is not None and len(d.options) > 1:
            w[d.zero] = -math.inf
        choice.append(int(w.argmax()))
    return choice


def _fixed(weights: list[torch.Tensor], fixed: dict[int, int]) -> list[torch.Tensor]:
    out = list(weights)
    for d, k in fixed.items():
        out[d] = F.one_hot(torch.tensor(k), len(weights[d])).to(weights[d])
    return out


def _tune(
    relaxed: nn.Module, data: Any, weights: list[torch.Tensor], options: GradientOptions,
    optimizer: torch.optim.Optimizer, seed: int,
) -> None:  # fmt: skip
    """Train the network weights with the architecture weights held at `weights`."""
    device = next(relaxed.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    params = list(relaxed.parameters())
    for _ in range(options.pt_tune_epochs):
        for x, y in data.train.batches(options.batch_size, True, gen, device, drop_last=True):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(relaxed(x, weights), y).backward()
            nn.utils.clip_grad_norm_(params, options.grad_clip)
            optimizer.step()


def select(
    relaxed: Any,
    data: Any,
    weights: list[torch.Tensor],
    options: GradientOptions,
    optimizer: torch.optim.Optimizer,
) -> tuple[list[int], dict[str, Any]]:
    """The derived choice (an option index per decision) and what the selection did."""
    if options.selection == "argmax":
        return derive_choice(relaxed, weights, options.excludes_none), {"selection": "argmax"}
    device = next(relaxed.parameters()).device
    torch.manual_seed(options.seed)
    order = np.random.default_rng(options.seed).permutation(len(relaxed.decisions))
    fixed: dict[int, int] = {}
    drops: dict[str, dict[str, float]] = {}
    for step, d in enumerate(int(i) for i in order):
        decision = relaxed.decisions[d]
        base = _fixed(weights, fixed)
        candidates = [
            k for k in range(len(decision.options))
            if not (options.excludes_none and k == decision.zero and len(decision.options) > 1)
        ]  # fmt: skip
        accs: dict[int, float] = {}
        for k in candidates:
            w = base[d].detach().clone()
            w[k] = 0.0
            w = w / w.sum() if w.sum() > 0 else w
            trial = [*base[:d], w, *base[d + 1 :]]
            accs[k], _ = _accuracy_loss(
                relaxed, data.valid, trial, options.batch_size, device,
                max_batches=options.pt_batches,
            )  # fmt: skip
        keep = min(accs, key=lambda k: accs[k])  # its removal costs the most accuracy
        fixed[d] = keep
        drops[decision.name] = {decision.options[k]: a for k, a in accs.items()}
        if options.pt_tune_epochs and step + 1 < len(order):
            _tune(relaxed, data, _fixed(weights, fixed), options, optimizer, options.seed + step)
    choice = [fixed[d] for d in range(len(relaxed.decisions))]
    return choice, {"selection": "pt", "order": [int(i) for i in order],
                    "accuracy_without": drops}  # fmt: skip
