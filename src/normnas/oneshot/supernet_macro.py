"""The macro space's supernet: every block choice in one network, sharing what the math allows.

What is shared, and why:

- **Convolutions**: one weight (and one bias) per block slot and kernel size, at the widest
  output width of the slot and the widest input width the slot can receive. A narrower
  block uses the first `c_out` filters over the first `c_in` input channels (slicing, as
  once-for-all does), so one tensor serves every width. The same conv is reused whatever
  the norm, placement, activation and residual of the block: none of them changes the
  conv's shape. The conv bias exists only where `space.build` gives the conv one
  (`conv_norm_act` with a norm has none: the norm would cancel it).
- **Residual projections**: one 1x1 conv per slot at the widest widths, sliced the same
  way; the identity shortcut (same width, stride 1) has no parameters.
- **Norms are not sliced**: each slot has its own norm module per (placement, norm kind,
  width), made by `make_norm` exactly as `space.build` makes it. The width is that of the
  channels the norm sees: the conv's output for `conv_norm_act` and `conv_act_norm`, the
  block's input (the previous block's width) for `norm_act_conv`. A norm describes the
  distribution it normalizes, and each of these keys sees a different one: the raw conv
  output, the activated output (non-negative after ReLU), or the block input; and a width
  slice of a wider layer is a different set of features with other statistics (slimmable
  networks' switchable BN). Private norms also keep every BN a whole module, so the
  recalibration of `normnas.nn.recalibrate_bn` and the BN modes work on them unchanged,
  and GroupNorm's group count (which follows the width: 16 -> 16 groups, 48 -> 24) is
  always the stand-alone network's. They cost little: a norm has 2 x width parameters,
  a conv width x width x k x k. A norm is shared across kernel sizes, activations and
  residual on/off (and, for `norm_act_conv`, the block's own width).
- **Stem and head**: the stem conv (when the space has one) is shared by every
  sub-network; the classifier is one linear layer on the last stage's widest width,
  sliced on its input columns. Activations, pooling and dropout have no parameters.
- **Depth**: a stage's depth chooses how many of its slots run; the skipped slots'
  weights are untouched.

`affine=False` removes gamma/beta from the blocks' BatchNorms (the other norms keep
theirs: they keep no running statistics, so the BN modes never concern them);
`subnet(arch)` then gives the stand-alone BNs gamma = 1, beta = 0, the same function.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from optuna.distributions import CategoricalDistribution
from torch import nn

from normnas.nn import make_norm
from normnas.spaces._macro_model import ACTIVATIONS, Block, MacroArch
from normnas.spaces.macro import BLOCK_FIELDS, MacroSpace

# where the norm sits decides the channels it sees (see the module docstring)
_NORM_ON_INPUT = "norm_act_conv"


class SlicedConv2d(nn.Module):
    """The widest conv of a slot for one kernel size; narrower convs use its first channels."""

    def __init__(self, out_max: int, in_max: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.weight = nn.Parameter(torch.empty(out_max, in_max, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(out_max))
        # nn.Conv2d's own initialization, at the widest fan-in
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(in_max * kernel * kernel)
        nn.init.uniform_(self.bias, -bound, bound)

    def sliced(self, c_out: int, c_in: int, bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight (and bias) of the `c_in -> c_out` conv: the first channels."""
        return self.weight[:c_out, :c_in], self.bias[:c_out] if bias else None

    def forward(self, x: torch.Tensor, c_out: int, bias: bool) -> torch.Tensor:
        weight, b = self.sliced(c_out, x.shape[1], bias)
        return F.conv2d(x, weight, b, stride=self.stride, padding=self.kernel // 2)

    def extra_repr(self) -> str:
        out_max, in_max = self.weight.shape[:2]
        return f"{in_max}, {out_max}, kernel_size={self.kernel}, stride={self.stride} (sliced)"


class SlicedLinear(nn.Module):
    """The classifier on the widest feature width; a narrower network uses its first columns."""

    def __init__(self, in_max: int, out_features: int) -> None:
        super().__init__()
        reference = nn.Linear(in_max, out_features)  # torch's initialization
        self.weight = nn.Parameter(reference.weight.detach().clone())
        self.bias = nn.Parameter(reference.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)


def _conv_bias(block: Block) -> bool:
    """Whether `space.build`'s conv of `block` has a bias (ConvBlock's rule)."""
    return not (block.placement == "conv_norm_act" and block.norm != "none")


def _body_layout(block: Block) -> list[str]:
    """The roles of ConvBlock.body's layers, in order (a `none` norm is dropped there)."""
    order = {
        "conv_norm_act": ["conv", "norm", "act"],
        "conv_act_norm": ["conv", "act", "norm"],
        "norm_act_conv": ["norm", "act", "conv"],
    }[block.placement]
    return [r for r in order if r != "norm" or block.norm != "none"]


class SuperBlock(nn.Module):
    """One block slot: a sliced conv per kernel, a norm per (placement, kind, width), the
    activations, and a sliced 1x1 projection for residuals whose shapes differ."""

    def __init__(
        self,
        space: MacroSpace,
        in_widths: tuple[int, ...],
        out_widths: tuple[int, ...],
        stride: int,
        affine: bool,
    ) -> None:
        super().__init__()
        self.stride = stride
        in_max, out_max = max(in_widths), max(out_widths)
        self.convs = nn.ModuleDict(
            {str(k): SlicedConv2d(out_max, in_max, k, stride) for k in space.kernels}
        )
        self.norms = nn.ModuleDict()
        for placement in space.placements:
            widths = in_widths if placement == _NORM_ON_INPUT else out_widths
            self.norms[placement] = nn.ModuleDict(
                {
                    kind: nn.ModuleDict({str(w): _norm(kind, w, affine) for w in widths})
                    for kind in space.norms
                    if kind != "none"
                }
            )
        self.acts = nn.ModuleDict({a: ACTIVATIONS[a]() for a in space.activations})
        needs_projection = stride != 1 or any(a != b for a in in_widths for b in out_widths)
        self.shortcut: SlicedConv2d | None = None
        if True in space.residual and needs_projection:
            self.shortcut = SlicedConv2d(out_max, in_max, 1, stride)

    def conv(self, kernel: int) -> SlicedConv2d:
        return cast(SlicedConv2d, self.convs[str(kernel)])

    def norm(self, block: Block, c_in: int) -> nn.Module | None:
        """The norm module `block` runs with input width `c_in` (None for `none`)."""
        if block.norm == "none":
            return None
        width = c_in if block.placement == _NORM_ON_INPUT else block.width
        return self.norms[block.placement][block.norm][str(width)]  # type: ignore[index]

    def projects(self, block: Block, c_in: int) -> bool:
        """Whether `block`'s residual goes through the 1x1 projection (ConvBlock's rule)."""
        return block.residual and not (c_in == block.width and self.stride == 1)

    def modules_of(self, block: Block, c_in: int) -> list[nn.Module]:
        """The modules `block` runs, in forward order of its body, then the projection."""
        roles = {
            "conv": self.conv(block.kernel),
            "norm": self.norm(block, c_in),
            "act": self.acts[block.activation],
        }
        out = [roles[r] for r in _body_layout(block)]
        if self.projects(block, c_in):
            out.append(self.shortcut)
        return [m for m in out if m is not None]

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        c_in = x.shape[1]
        out = x
        for role in _body_layout(block):
            if role == "conv":
                out = self.conv(block.kernel)(out, block.width, _conv_bias(block))
            elif role == "norm":
                out = self.norm(block, c_in)(out)  # type: ignore[misc]
            else:
                out = self.acts[block.activation](out)
        if not block.residual:
            return out
        if self.projects(block, c_in):
            assert self.shortcut is not None
            return out + self.shortcut(x, block.width, True)
        return out + x


def _norm(kind: str, width: int, affine: bool) -> nn.Module:
    if kind == "batchnorm" and not affine:
        return make_norm(kind, width, affine=False)
    return make_norm(kind, width)


class MacroSupernet(nn.Module):
    """Weight-sharing supernet of a `MacroSpace` (see the module docstring for the sharing).

    `set_arch(arch)` activates a path; `forward` then computes what `space.build(arch,
    num_classes, in_channels)` computes with the weights of `subnet_state_dict(arch)`.
    """

    def __init__(
        self,
        space: MacroSpace | None = None,
        num_classes: int = 10,
        in_channels: int = 3,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.space = space if space is not None else MacroSpace()
        self.num_classes, self.in_channels, self.affine = num_classes, in_channels, affine
        stem_width = self.space.stem_width
        self.stem: nn.Module = nn.Identity()
        if stem_width > 0:
            self.stem = nn.Conv2d(in_channels, stem_width, 3, padding=1)
        in_widths: tuple[int, ...] = (stem_width if stem_width > 0 else in_channels,)
        stages: list[nn.Module] = []
        for spec in self.space.stages:
            slots = []
            for j in range(spec.max_blocks):
                stride = spec.stride if j == 0 else 1
                slots.append(SuperBlock(self.space, in_widths, spec.widths, stride, affine))
                in_widths = spec.widths
            stages.append(nn.ModuleList(slots))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = SlicedLinear(max(in_widths), num_classes)
        self.arch: MacroArch | None = None

    # -- the path ---------------------------------------------------------------------------
    def _path(self, arch: MacroArch) -> Iterator[tuple[str, SuperBlock, Block, int]]:
        """(build's `blocks.n` prefix, slot, block, input width) for each active block."""
        c = self.space.stem_width or self.in_channels
        n = 0
        for slots, stage in zip(self.stages, arch.stages, strict=True):
            for slot, block in zip(slots, stage, strict=False):
                yield f"blocks.{n}", slot, block, c  # type: ignore[misc]
                c, n = block.width, n + 1

    # -- the Supernet protocol --------------------------------------------------------------
    def set_arch(self, arch: MacroArch) -> None:
        self.arch = self.space.validate(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch is None:
            raise RuntimeError("MacroSupernet: call set_arch(arch) before forward")
        x = self.stem(x)
        for _, slot, block, _ in self._path(self.arch):
            x = slot(x, block)
        x = self.pool(x).flatten(1)
        if self.arch.dropout > 0:
            x = F.dropout(x, self.arch.dropout, self.training)
        return self.classifier(x)

    def subnet(self, arch: MacroArch) -> nn.Module:
        """`space.build(arch)` with copies of this supernet's weights and norm statistics."""
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.num_classes, self.in_channels)
        net.load_state_dict(self.subnet_state_dict(arch), strict=True)
        return net.to(self.classifier.weight.device)

    def subnet_state_dict(self, arch: MacroArch) -> dict[str, torch.Tensor]:
        """The state dict of `space.build(arch)` holding this supernet's tensors (cloned,
        sliced to the path's widths). Without affine, the blocks' BNs get gamma 1, beta 0."""
        arch = self.space.validate(arch)
        out: dict[str, torch.Tensor] = {}
        if self.space.stem_width > 0:
            out.update({f"stem.{k}": v for k, v in self.stem.state_dict().items()})
        c = self.space.stem_width or self.in_channels
        for prefix, slot, block, c_in in self._path(arch):
            for i, role in enumerate(_body_layout(block)):
                key = f"{prefix}.body.{i}"
                if role == "conv":
                    conv = slot.conv(block.kernel)
                    weight, bias = conv.sliced(block.width, c_in, _conv_bias(block))
                    out[f"{key}.weight"] = weight
                    if bias is not None:
                        out[f"{key}.bias"] = bias
                elif role == "norm":
                    norm = slot.norm(block, c_in)
                    assert norm is not None
                    out.update({f"{key}.{k}": v for k, v in _norm_state(norm).items()})
            if slot.projects(block, c_in):
                assert slot.shortcut is not None
                weight, bias = slot.shortcut.sliced(block.width, c_in, True)
                out[f"{prefix}.shortcut.weight"], out[f"{prefix}.shortcut.bias"] = weight, bias
            c = block.width
        out["classifier.weight"] = self.classifier.weight[:, :c]
        out["classifier.bias"] = self.classifier.bias
        return {k: v.detach().clone() for k, v in out.items()}

    def path_modules(self, arch: MacroArch) -> list[nn.Module]:
        """The stem, each active block's conv, norm, activation (and projection), the pooling
        and the classifier, in forward order."""
        arch = self.space.validate(arch)
        modules: list[nn.Module] = [self.stem]
        for _, slot, block, c_in in self._path(arch):
            modules.extend(slot.modules_of(block, c_in))
        modules.extend([self.pool, self.classifier])
        return modules

    def indicator_norms(self, arch: MacroArch) -> list[list[nn.Module]]:
        """Per active block, in order: [its BN] (a block has one norm, so its last BN), or []
        where its norm is not batchnorm."""
        arch = self.space.validate(arch)
        return [
            [slot.norm(block, c_in)] if block.norm == "batchnorm" else []  # type: ignore[list-item]
            for _, slot, block, c_in in self._path(arch)
        ]

    def fair_archs(self, rng: np.random.Generator) -> list[MacroArch]:
        """FairNAS: k archs, k the largest number of choices of any decision.

        Each decision takes its choices in a random permutation, cycled when it has fewer
        than k, so over the k archs every choice of a decision is used once (k/n times,
        rounded, when n < k). A slot that a stage's depth skips in some archs deals its
        choices over the archs where it runs, so it too uses every choice when it runs in
        at least as many archs as it has choices (otherwise as many distinct ones as it can).
        """
        dists = self.space.distributions()
        choices = {n: cast(CategoricalDistribution, d).choices for n, d in dists.items()}
        k = max(len(c) for c in choices.values())
        params: list[dict[str, Any]] = [{} for _ in range(k)]

        def deal(name: str, targets: list[int]) -> None:
            values = choices[name]
            perm = rng.permutation(len(values))
            for t in range(k):
                params[t][name] = values[0]  # a skipped slot's value is ignored
            for pos, t in enumerate(targets):
                params[t][name] = values[int(perm[pos % len(values)])]

        for i in range(len(self.space.stages)):
            deal(f"s{i}.depth", list(range(k)))
        deal("head.dropout", list(range(k)))
        for i, spec in enumerate(self.space.stages):
            for j in range(spec.max_blocks):
                running = [t for t in range(k) if params[t][f"s{i}.depth"] > j]
                for field in BLOCK_FIELDS:
                    deal(f"s{i}.b{j}.{field}", running)
        return [self.space.from_params(p) for p in params]

    def sandwich_archs(self, rng: np.random.Generator, randoms: int = 2) -> list[MacroArch]:
        """The sandwich rule (slimmable networks, BigNAS): [largest, smallest, `randoms`
        uniform archs]. Largest/smallest take every stage's most/fewest blocks, every
        block's widest/narrowest width and largest/smallest kernel; the choices that have
        no size (norm, placement, activation, residual, dropout) are drawn uniformly, so
        every norm also trains inside the extremes."""
        return [self.extreme_arch(rng, True), self.extreme_arch(rng, False)] + [
            self.space.sample(rng) for _ in range(randoms)
        ]

    def extreme_arch(self, rng: np.random.Generator, largest: bool) -> MacroArch:
        """The largest (or smallest) sub-network; its size-less choices drawn from `rng`."""
        dists = self.space.distributions()
        choices = {n: cast(CategoricalDistribution, d).choices for n, d in dists.items()}
        sized = (".depth", ".width", ".kernel")
        params: dict[str, Any] = {}
        for name, values in choices.items():
            if name.endswith(sized):
                params[name] = max(values) if largest else min(values)  # type: ignore[type-var]
            else:
                params[name] = values[int(rng.integers(len(values)))]
        return self.space.from_params(params)


def _norm_state(norm: nn.Module) -> dict[str, torch.Tensor]:
    """The norm's state; an affine-less BN gets the gamma 1 / beta 0 `space.build`'s BN has."""
    state = dict(norm.state_dict())
    if isinstance(norm, nn.BatchNorm2d) and not norm.affine:
        # a BN without running statistics (a relaxed supernet's option) has no running_mean
        like = norm.running_mean
        if like is None:
            like = torch.empty(norm.num_features)
        state["weight"], state["bias"] = torch.ones_like(like), torch.zeros_like(like)
    return state
