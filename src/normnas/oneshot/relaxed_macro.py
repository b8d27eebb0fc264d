"""The relaxed macro supernet: each block's norm, placement, activation, kernel, width and
residual, and each stage's depth, chosen by mixing weights (so by gradient).

`RelaxedMacro` is `MacroSupernet` (the same shared convs, per-width norms, projections and
classifier, the same `subnet`) with a forward that takes one weight vector per decision.
The decisions are the space's Optuna parameters with more than one choice, in the space's
order (`s0.depth`, `s0.b0.width`, ...); `head.dropout` is not relaxed: the forward and
`arch_of` use the space's first dropout value.

How each dimension is mixed, inside one block (all tensors carry the slot's widest widths;
channels past a block's width are zero when its width weights are one-hot):

- **kernel**: one conv with the mixed weight sum_k w_k * pad(W_k) (each kernel zero-padded
  to the largest, padding largest // 2: the same output size and centres), and the mixed
  bias sum_k w_k * b_k;
- **width**: the conv output times the mixed channel mask sum_w w_w * [c < w]; a norm,
  which has a module per width, runs per width on the first w channels and is mixed the
  same way, sum_w w_w * pad(norm_w(z[:, :w])); the next block sees the width weights as
  its input-width weights (a `norm_act_conv` norm sees the block's input width; the
  residual is the identity exactly where input width == output width at stride 1, else
  the projection);
- **norm**: sum_n w_n * norm_n(z) (`none`: z itself, with the conv bias that
  `conv_norm_act` drops before a norm);
- **activation**: sum_a w_a * act_a(z);
- **placement**: sum_p w_p * body_p(x); the two conv-first placements share the conv;
- **residual**: w_False * body + w_True * (body + shortcut(x));
- **depth**: sum_d w_d * (the stage's output after d blocks); blocks run once, in order.

Exact: with one-hot weights the forward is `subnet(arch)(x)` for `arch = arch_of(choice)`
(train mode; in eval mode too with running statistics), up to float rounding (sums with
the zero-padded kernel taps and zero channels). Soft weights mix each dimension where it
acts, chained through the block (a mixed conv feeds mixed norms feeds mixed activations):
not the sum over all combinations of choices weighted by products, which would cost their
product. Cost per block: at most two convs at the widest widths plus the projection, one
norm call per (placement, norm kind, width) and one activation per (placement, kind): it
grows with the sum of the options per dimension. With `active` (GDAS) only the active
option of each decision runs: one conv, one norm, one activation per block, and a stage
runs only as many blocks as its active depth.

BN: `affine` as in `MacroSupernet`; `track_running_stats=False` makes the blocks' BNs
normalize by batch statistics in train and eval mode, and `subnet(arch)` then holds the
BNs' initial statistics (mean 0, var 1): recalibrate them before evaluating in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from optuna.distributions import CategoricalDistribution
from torch import nn

from normnas.oneshot.relaxed import (
    Decision,
    check_weights,
    drop_running_stats,
    fill_missing_state,
    mix_calls,
)
from normnas.oneshot.supernet_macro import MacroSupernet, SuperBlock
from normnas.spaces._macro_model import MacroArch
from normnas.spaces.macro import MacroSpace

_DROPOUT = "head.dropout"


@dataclass(frozen=True)
class _Width:
    """The width a tensor's channels hold: the options, their weights, the active one."""

    widths: tuple[int, ...]
    weight: torch.Tensor
    active: int | None


class _Pick:
    """Per forward: a decision's (weights, active index) by parameter name; a field with one
    option is not a decision and gets the constant weight [1] (its option always runs)."""

    def __init__(
        self,
        index: dict[str, int],
        weights: Sequence[torch.Tensor],
        active: Sequence[int] | None,
        like: torch.Tensor,
    ) -> None:
        self.index, self.weights, self.active = index, weights, active
        self.one = torch.ones(1, dtype=like.dtype, device=like.device)

    def __call__(self, name: str) -> tuple[torch.Tensor, int | None]:
        d = self.index.get(name)
        if d is None:
            return self.one, None if self.active is None else 0
        return self.weights[d], None if self.active is None else int(self.active[d])


def _pad(t: torch.Tensor, channels: int) -> torch.Tensor:
    """`t` with zero channels appended up to `channels`."""
    return t if t.shape[1] == channels else F.pad(t, (0, 0, 0, 0, 0, channels - t.shape[1]))


def _first(width: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    """The channel mask [c < width], shaped (1, channels, 1, 1)."""
    mask = torch.arange(channels, device=like.device) < width
    return mask.to(like.dtype).view(1, -1, 1, 1)


def _mask(width: _Width, channels: int, like: torch.Tensor) -> torch.Tensor:
    """The mixed channel mask sum_w weight_w * [c < w], shaped (1, channels, 1, 1)."""
    calls = [lambda w=w: _first(w, channels, like) for w in width.widths]
    return mix_calls(calls, width.weight, width.active)


class RelaxedMacro(MacroSupernet):
    """The macro space's relaxed supernet; see the module docstring."""

    def __init__(
        self,
        space: MacroSpace | None = None,
        num_classes: int = 10,
        in_channels: int = 3,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(space, num_classes, in_channels, affine=affine)
        self.track_running_stats = track_running_stats
        if not track_running_stats:
            drop_running_stats(self.stages)
        dists = self.space.distributions()
        self._choices = {
            name: tuple(cast(CategoricalDistribution, d).choices) for name, d in dists.items()
        }
        self.decisions: tuple[Decision, ...] = tuple(
            Decision(name, tuple(str(v) for v in values))
            for name, values in self._choices.items()
            if name != _DROPOUT and len(values) > 1
        )
        self._index = {d.name: i for i, d in enumerate(self.decisions)}

    # -- the relaxed forward ----------------------------------------------------------------
    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        weights: Sequence[torch.Tensor] | None = None,
        active: Sequence[int] | None = None,
    ) -> torch.Tensor:
        if weights is None:  # the weight-sharing protocol: the path set by set_arch
            return super().forward(x)
        check_weights(self.decisions, weights, active)
        pick = _Pick(self._index, weights, active, x)
        x = self.stem(x)
        width = _Width((x.shape[1],), pick.one, None if active is None else 0)
        for i, (slots, spec) in enumerate(zip(self.stages, self.space.stages, strict=True)):
            w_depth, a_depth = pick(f"s{i}.depth")
            runs = spec.max_blocks if a_depth is None else spec.min_blocks + a_depth
            outs: list[tuple[torch.Tensor, _Width]] = []
            h = x
            for j in range(runs):
                h, width = self._block(cast(SuperBlock, slots[j]), h, width, f"s{i}.b{j}", pick)
                if j + 1 >= spec.min_blocks:
                    outs.append((h, width))
            x = mix_calls([lambda o=o: o[0] for o in outs], w_depth, a_depth)
            last = [o[1] for o in outs]
            width = _Width(
                spec.widths,
                mix_calls([lambda w=w: w.weight for w in last], w_depth, a_depth),
                None if a_depth is None else last[a_depth].active,
            )
        x = self.pool(x).flatten(1)
        x = F.dropout(x, self.space.dropout[0], self.training)
        return self.classifier(x)

    def _block(
        self, slot: SuperBlock, x: torch.Tensor, c_in: _Width, prefix: str, pick: _Pick
    ) -> tuple[torch.Tensor, _Width]:
        """One block slot with every field mixed; returns its output and its width."""
        stage = int(prefix[1 : prefix.index(".")])
        out_max = max(self.space.stages[stage].widths)
        w_width, a_width = pick(f"{prefix}.width")
        c_out = _Width(self.space.stages[stage].widths, w_width, a_width)
        w_act, a_act = pick(f"{prefix}.activation")
        cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def conv_of_input() -> tuple[torch.Tensor, torch.Tensor]:
            if "x" not in cache:  # shared by the two conv-first placements
                cache["x"] = self._conv(slot, x, pick, prefix)
            return cache["x"]

        def act(z: torch.Tensor) -> torch.Tensor:
            calls = [lambda a=a: slot.acts[a](z) for a in self.space.activations]
            return mix_calls(calls, w_act, a_act)

        def body(placement: str) -> torch.Tensor:
            if placement == "conv_norm_act":
                c, bias = conv_of_input()
                return act(self._norm(slot, placement, c, c + bias, c_out, pick, prefix))
            if placement == "conv_act_norm":
                c, bias = conv_of_input()
                h = act(c + bias)
                return self._norm(slot, placement, h, h, c_out, pick, prefix)
            h = act(self._norm(slot, placement, x, x, c_in, pick, prefix))
            c, bias = self._conv(slot, h, pick, prefix)
            return (c + bias) * _mask(c_out, out_max, c)

        w_place, a_place = pick(f"{prefix}.placement")
        placements = self.space.placements
        bodies = [lambda p=p: body(p) for p in placements]
        out: dict[str, torch.Tensor] = {}

        def mixed_body() -> torch.Tensor:
            if "body" not in out:
                out["body"] = mix_calls(bodies, w_place, a_place)
            return out["body"]

        def with_residual(residual: bool) -> torch.Tensor:
            if not residual:
                return mixed_body()
            return mixed_body() + self._shortcut(slot, x, c_in, c_out, out_max)

        w_res, a_res = pick(f"{prefix}.residual")
        calls = [lambda r=r: with_residual(r) for r in self.space.residual]
        return mix_calls(calls, w_res, a_res), c_out

    def _conv(
        self, slot: SuperBlock, x: torch.Tensor, pick: _Pick, prefix: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel-mixed conv of `x` (no bias, all output channels) and the mixed bias."""
        w_kernel, a_kernel = pick(f"{prefix}.kernel")
        kernels = self.space.kernels
        shape = (1, -1, 1, 1)
        if a_kernel is not None:  # only the active kernel runs, at its own size
            conv = slot.conv(kernels[a_kernel])
            scale, rest = w_kernel[a_kernel], w_kernel.sum() - w_kernel[a_kernel]
            y = F.conv2d(x, scale * conv.weight, None, conv.stride, conv.kernel // 2)
            return y + rest, (scale * conv.bias).view(shape)
        k_max = max(kernels)
        weight: torch.Tensor | None = None
        bias: torch.Tensor | None = None
        for k, wk in zip(kernels, w_kernel, strict=True):
            conv = slot.conv(k)
            p = (k_max - k) // 2
            term = wk * F.pad(conv.weight, (p, p, p, p))
            weight = term if weight is None else weight + term
            bias = wk * conv.bias if bias is None else bias + wk * conv.bias
        assert weight is not None and bias is not None
        return F.conv2d(x, weight, None, slot.stride, k_max // 2), bias.view(shape)

    def _norm(
        self,
        slot: SuperBlock,
        placement: str,
        z: torch.Tensor,
        unnormed: torch.Tensor,
        width: _Width,
        pick: _Pick,
        prefix: str,
    ) -> torch.Tensor:
        """sum_n w_n * (sum_w w_w * pad(norm_{n,w}(z[:, :w]))); `none` is `unnormed`
        (z, or z plus the bias a conv keeps only without a norm) times the width mask."""
        w_norm, a_norm = pick(f"{prefix}.norm")
        channels = z.shape[1]

        def kind(name: str) -> torch.Tensor:
            if name == "none":
                return unnormed * _mask(width, channels, z)
            modules = cast(nn.ModuleDict, slot.norms[placement][name])  # type: ignore[index]
            calls = [lambda w=w: _pad(modules[str(w)](z[:, :w]), channels) for w in width.widths]
            return mix_calls(calls, width.weight, width.active)

        return mix_calls([lambda n=n: kind(n) for n in self.space.norms], w_norm, a_norm)

    @staticmethod
    def _shortcut(
        slot: SuperBlock, x: torch.Tensor, c_in: _Width, c_out: _Width, out_max: int
    ) -> torch.Tensor:
        """The residual branch: the identity where input width == output width at stride 1
        (the weight of that pair), the sliced 1x1 projection for every other pair."""
        if slot.shortcut is None:  # every pair has equal widths at stride 1
            return x
        proj = slot.shortcut(x, out_max, True)

        def term(w: int) -> torch.Tensor:
            masked = proj * _first(w, out_max, proj)
            if slot.stride != 1 or w not in c_in.widths:
                return masked
            same = c_in.weight[c_in.widths.index(w)]
            other = c_in.weight.sum() - same
            return same * _pad(x[:, :w], out_max) + other * masked

        calls = [lambda w=w: term(w) for w in c_out.widths]
        return mix_calls(calls, c_out.weight, c_out.active)

    # -- arch <-> choice --------------------------------------------------------------------
    def arch_of(self, choice: Sequence[int]) -> MacroArch:
        """The arch of one option index per decision (fixed fields: their only value;
        dropout: the space's first)."""
        if len(choice) != len(self.decisions):
            raise ValueError(
                f"choice: expected {len(self.decisions)} option indices, got {len(choice)}"
            )
        params: dict[str, Any] = {name: values[0] for name, values in self._choices.items()}
        for d, c in zip(self.decisions, choice, strict=True):
            if not 0 <= int(c) < len(d.options):
                raise ValueError(f"choice of {d.name!r}: {c} is not an option index "
                                 f"(0..{len(d.options) - 1})")  # fmt: skip
            params[d.name] = self._choices[d.name][int(c)]
        params[_DROPOUT] = self.space.dropout[0]
        return self.space.from_params(params)

    def choice_of(self, arch: MacroArch) -> list[int]:
        """Option index per decision (a skipped slot: its fields' first options)."""
        params = self.space.full_params(arch)
        return [self._choices[d.name].index(params[d.name]) for d in self.decisions]

    def subnet(self, arch: MacroArch) -> nn.Module:
        """`space.build(arch)` with this supernet's weights (initial BN statistics where the
        blocks keep none)."""
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.num_classes, self.in_channels)
        net.load_state_dict(fill_missing_state(net, self.subnet_state_dict(arch)), strict=True)
        return net.to(self.classifier.weight.device)
