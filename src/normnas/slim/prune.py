"""Structural channel pruning of a network at a global ratio, by a named criterion.

torch-pruning's dependency graph (DepGraph) does the bookkeeping: which channels are tied
together (a convolution's outputs, its BN, every layer that reads them, through residual
additions and NAS-Bench-201's node sums, flatten into a linear layer) and how to cut each
layer. Its importances score the channels: `bn` is `BNScaleImportance` without
normalization (|γ|, averaged over the BN layers of a group: the global threshold of network
slimming), `l1` is `MagnitudeImportance(p=1)` (the L1 norm of every weight slice of the
channel in the group, divided by the group's mean so that layers of different fan-in
compare), `random` is `RandomImportance` (seeded).

What we add, and why not `MetaPruner(global_pruning=True)`:
- the selection: the `round(ratio · N)` lowest-scored of the N candidate channels are
  removed, exactly, and a layer that would lose every channel is refused by name (or keeps
  `min_channels`, the channels it keeps being replaced by the next lowest elsewhere, so the
  count stays exact). MetaPruner derives per-layer counts from a threshold and caps them
  silently (`max_pruning_ratio`);
- the same candidates for every criterion: when the network has BatchNorm, the channel
  groups that contain an affine BN (the ones `bn` can score), so that the three criteria
  differ only in which channels they choose; without BN, every group;
- pruners for the layers torch-pruning does not resize right: our `ChannelLayerNorm` (it
  knows nothing of it) and `nn.GroupNorm` (torch-pruning keeps `num_groups`, which need not
  divide the channels left; we keep the channels per group and shrink `num_groups`, and
  round the channels a GroupNorm keeps up to a whole number of groups, said in the notes).

The output layer (the classifier) keeps its outputs; the network's input channels are
never pruned.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from normnas.errors import UserError
from normnas.nn.norm import ChannelLayerNorm

CRITERIA: tuple[str, ...] = ("bn", "l1", "random")


class SlimError(UserError):
    """A network or ratio that cannot be slimmed as asked."""


def _tp() -> Any:
    try:
        import torch_pruning
    except ImportError:
        raise SlimError(
            "normnas slim needs torch-pruning, which is not installed; pip install "
            "'normnas[slim]' (or: pip install torch-pruning)"
        ) from None
    return torch_pruning


@dataclass
class PrunePlan:
    """What `prune_channels` removed: per root layer (the convolution or linear layer whose
    outputs a channel group is), the indices of its output channels removed."""

    ratio: float
    criterion: str
    candidates: int  # channels the ratio is a share of
    removed: dict[str, list[int]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # channels of each candidate group
    notes: list[str] = field(default_factory=list)

    @property
    def n_removed(self) -> int:
        return sum(len(v) for v in self.removed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio, "criterion": self.criterion, "candidates": self.candidates,
            "removed": {k: list(v) for k, v in self.removed.items()}, "sizes": dict(self.sizes),
            "notes": list(self.notes),
        }  # fmt: skip


def has_batchnorm_scales(model: nn.Module) -> bool:
    """Does `model` have a torch BatchNorm layer with a learned scale γ?"""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine for m in model.modules())


def check_criterion(model: nn.Module, criterion: str) -> None:
    """SlimError for an unknown criterion, or `bn` on a network without BatchNorm scales."""
    if criterion not in CRITERIA:
        raise SlimError(f"--criterion: unknown {criterion!r}; valid: {', '.join(CRITERIA)}")
    if criterion == "bn" and not has_batchnorm_scales(model):
        norms = sorted({type(m).__name__ for m in model.modules() if _is_norm(m)}) or ["no norm"]
        raise SlimError(
            f"--criterion bn needs BatchNorm scales (γ), and this network has none "
            f"({', '.join(norms)}); use --criterion l1 (the L1 norm of each filter) instead"
        )


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, ChannelLayerNorm))


def output_layer(model: nn.Module, example: torch.Tensor) -> nn.Module | None:
    """The layer whose output is the network's output (its classifier), else None."""
    outputs: dict[int, nn.Module] = {}
    hooks = [
        m.register_forward_hook(lambda mod, _i, out: outputs.__setitem__(id(out), mod))
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))
    ]
    try:
        with torch.no_grad():
            out = model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return outputs.get(id(out))


def _pruners(tp: Any) -> dict[type[nn.Module], Any]:
    """Pruners for the layers torch-pruning does not handle as we need (module doc)."""
    base = tp.pruner.function.BasePruningFunc

    class ChannelLayerNormPruner(base):  # type: ignore[misc, valid-type]
        def prune_out_channels(self, layer: Any, idxs: Sequence[int]) -> nn.Module:
            keep = sorted(set(range(layer.num_features)) - set(idxs))
            layer.num_features = len(keep)
            if layer.weight is not None:
                layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 0)
                layer.bias = self._prune_parameter_and_grad(layer.bias, keep, 0)
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: Any) -> int:
            return int(layer.num_features)

        get_in_channels = get_out_channels

    class GroupNormPruner(base):  # type: ignore[misc, valid-type]
        def prune_out_channels(self, layer: Any, idxs: Sequence[int]) -> nn.Module:
            per_group = layer.num_channels // layer.num_groups
            keep = sorted(set(range(layer.num_channels)) - set(idxs))
            if len(keep) % per_group:  # prune_channels rounds to whole groups first
                raise SlimError(f"GroupNorm: {len(keep)} channels are not whole groups")
            layer.num_channels, layer.num_groups = len(keep), len(keep) // per_group
            if layer.affine:
                layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 0)
                layer.bias = self._prune_parameter_and_grad(layer.bias, keep, 0)
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: Any) -> int:
            return int(layer.num_channels)

        get_in_channels = get_out_channels

    return {ChannelLayerNorm: ChannelLayerNormPruner(), nn.GroupNorm: GroupNormPruner()}


_SUPPORTED = (
    nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase, nn.GroupNorm,
    ChannelLayerNorm,
)  # fmt: skip


def _check_layers(model: nn.Module) -> None:
    """SlimError for a layer with weights that the pruning does not know how to cut."""
    for name, m in model.named_modules():
        if isinstance(m, _SUPPORTED) or not list(m.parameters(recurse=False)):
            continue
        raise SlimError(
            f"slim: cannot prune layer {name} ({type(m).__name__}): only convolutions, "
            "linear layers and BatchNorm/GroupNorm/InstanceNorm/LayerNorm are supported"
        )


@dataclass
class _Group:
    name: str  # the root layer's name
    root: nn.Module
    size: int
    scores: torch.Tensor | None  # the criterion's score of each channel (None: cannot score)
    has_bn: bool
    per_group: int  # channels per GroupNorm group in it (the kept count is a multiple)


def _groups(
    model: nn.Module, example: torch.Tensor, criterion: str, seed: int
) -> tuple[Any, list[_Group]]:
    tp = _tp()
    ignored = [m for m in [output_layer(model, example)] if m is not None]
    graph = tp.DependencyGraph().build_dependency(
        model, example_inputs=example, customized_pruners=_pruners(tp), verbose=False
    )
    bn_scale = tp.importance.BNScaleImportance(normalizer=None)
    importance = {
        "bn": bn_scale,
        "l1": tp.importance.MagnitudeImportance(p=1),
        "random": tp.importance.RandomImportance(),
    }[criterion]
    names = {m: n for n, m in model.named_modules()}
    out: list[_Group] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # RandomImportance draws from torch's generator
        for group in graph.get_all_groups(
            ignored_layers=ignored, root_module_types=(nn.modules.conv._ConvNd, nn.Linear)
        ):
            root = group[0].dep.target.module
            size = len(group[0].idxs)
            scores = importance(group)
            has_bn = bn_scale(group) is not None
            per_group = 1
            for dep, _ in group:
                layer = dep.target.module
                if isinstance(layer, nn.GroupNorm):
                    s = layer.num_channels // layer.num_groups
                    per_group = per_group * s // math.gcd(per_group, s)
            out.append(_Group(names.get(root, "?"), root, size, scores, has_bn, per_group))
    return graph, out


def prune_channels(
    model: nn.Module,
    ratio: float,
    criterion: str = "bn",
    example: torch.Tensor | None = None,
    input_shape: Sequence[int] | None = None,
    min_channels: int | None = None,
    seed: int = 0,
) -> tuple[nn.Module, PrunePlan]:
    """A pruned copy of `model` (eval mode, CPU) without the `round(ratio · N)` channels
    the criterion scores lowest among the N candidates, and the plan of what was removed.

    `example` (or a random input of `input_shape`, one sample's shape) is traced once.
    A layer that would lose every channel is a SlimError naming it unless `min_channels`
    (>= 1) is given: then it keeps that many and the next lowest channels elsewhere go
    instead. SlimError for a ratio outside (0, 1), an unknown criterion, `bn` without BN.
    """
    if not (isinstance(ratio, (int, float)) and 0 < ratio < 1):
        raise SlimError(f"--ratios: each ratio must be in (0, 1), got {ratio!r}")
    if min_channels is not None and min_channels < 1:
        raise SlimError(f"--min-channels must be >= 1, got {min_channels}")
    net = copy.deepcopy(model).cpu().eval()
    check_criterion(net, criterion)
    _check_layers(net)
    if example is None:
        if input_shape is None:
            raise ValueError("prune_channels: give example or input_shape")
        example = torch.randn(1, *input_shape)
    example = example.cpu()
    graph, groups = _groups(net, example, criterion, seed)
    with_bn = has_batchnorm_scales(net)
    candidates = [g for g in groups if g.scores is not None and (g.has_bn or not with_bn)]
    plan = PrunePlan(float(ratio), criterion, sum(g.size for g in candidates))
    plan.sizes = {g.name: g.size for g in candidates}
    chosen_ids = {id(g) for g in candidates}
    skipped = ", ".join(g.name for g in groups if id(g) not in chosen_ids)
    if skipped and with_bn:
        plan.notes.append(f"kept whole (no BatchNorm on their channels, any criterion): {skipped}")
    k = round(ratio * plan.candidates)
    removed = _select(candidates, k, min_channels, float(ratio), plan.notes)
    tp = _tp()
    for g in candidates:
        idxs = removed.get(g.name)
        if not idxs:
            continue
        fn = (
            tp.prune_linear_out_channels
            if isinstance(g.root, nn.Linear)
            else (tp.prune_conv_out_channels)
        )
        graph.get_pruning_group(g.root, fn, sorted(idxs)).prune()
        plan.removed[g.name] = sorted(idxs)
    _fit_untraced_inputs(net, example, set(graph.module2node))
    return net.eval(), plan


def _fit_untraced_inputs(model: nn.Module, example: torch.Tensor, traced: set[Any]) -> None:
    """Cut the input channels of the convolutions the dependency graph could not see: one
    that reads an all-zero tensor made with `zeros_like` (NAS-Bench-201's node without an
    incoming edge: autograd does not tie it to the tensor it copies the shape of) or one
    whose output never reaches the network's output (a cell op on a node that is not
    summed into the cell's output). Which input channels go does not matter: they multiply
    zeros, or what they compute is never used."""

    def fit(m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        if (
            isinstance(m, nn.Conv2d)
            and m.groups == 1
            and x.shape[1] < m.in_channels
            and (m not in traced or not bool(x.any()))
        ):
            m.weight = nn.Parameter(m.weight.detach()[:, : x.shape[1]].clone())
            m.in_channels = int(x.shape[1])

    hooks = [m.register_forward_pre_hook(fit) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()


def _select(
    groups: list[_Group], k: int, min_channels: int | None, ratio: float, notes: list[str]
) -> dict[str, list[int]]:
    """The k lowest-scored channels over all `groups` ({root name: indices}), under the
    floors: no layer emptied (SlimError) or, with `min_channels`, that many left in each;
    a GroupNorm's channels kept in whole groups."""
    ranked = sorted(
        (float(s), gi, c)
        for gi, g in enumerate(groups)
        for c, s in enumerate(g.scores.tolist())  # type: ignore[union-attr]
    )
    floor = [max(min_channels, g.per_group) if min_channels else 0 for g in groups]
    chosen: dict[int, list[int]] = {}
    held: set[int] = set()  # groups that kept channels the ranking would have removed
    for _, gi, c in ranked:
        if sum(len(v) for v in chosen.values()) == k:
            break
        if groups[gi].size - len(chosen.get(gi, [])) - 1 < floor[gi]:
            held.add(gi)
            continue
        chosen.setdefault(gi, []).append(c)
    emptied = [groups[gi].name for gi, c in chosen.items() if len(c) == groups[gi].size]
    if emptied:
        raise SlimError(
            f"ratio {ratio:g} would remove every channel of {', '.join(emptied)}; give a "
            "lower ratio, or --min-channels N to keep N channels in each layer"
        )
    taken = sum(len(v) for v in chosen.values())
    if held:
        notes.append(
            f"kept the --min-channels {min_channels} channel(s) in "
            f"{', '.join(groups[gi].name for gi in sorted(held))}"
            + ("" if taken == k else f"; removed {taken} channels, not {k}: no layer had more")
        )
    # a GroupNorm keeps whole groups: give back the best-scored removed channels until it does
    for gi, idxs in chosen.items():
        g = groups[gi]
        extra = (g.size - len(idxs)) % g.per_group
        if extra:
            back = g.per_group - extra
            idxs.sort(key=lambda c: float(g.scores[c]))  # type: ignore[index]
            del idxs[len(idxs) - back :]
            notes.append(
                f"{g.name}: {back} channel(s) kept so that its GroupNorm keeps whole groups"
            )
    return {groups[gi].name: sorted(idxs) for gi, idxs in chosen.items() if idxs}
