"""Fold BatchNorm into the conv/linear layer before it, for inference.

Which pairs fold (a pair is a Conv1d/2d/3d or Linear layer and a BatchNorm, ours or torch's):

1. Traced data flow, the main rule: the model (or, where it cannot be traced, each submodule
   in turn, down the tree) is traced with `torch.fx`. A BN folds when its only input is the
   output of a conv/linear call, that output feeds nothing else, and each module is called
   exactly once in the traced forward. This holds whatever the registration order is, and
   finds pairs that span modules (a block ending in a conv followed by a BN outside it).
2. `nn.Sequential`, where tracing fails: consecutive children conv, BN of a Sequential
   whose `forward` is Sequential's own (it calls its children in order, by definition).
3. Opt in: `fold_bn(model, pairs=[("conv", "bn")])` for pairs you vouch for in modules
   that cannot be traced.

Every pair also needs: BN tracking running stats, BN channels == the layer's output
channels/features, and neither module registered twice in the model (shared weights).
Grouped and depthwise convs fold (the scale is per output channel).

Cannot fold: conv → ReLU → BN (or anything between them), a conv output also used
elsewhere (e.g. a residual taken before the BN), a BN with `track_running_stats=False`
(it always uses batch stats), BN before a conv (pre-activation order), ConvTranspose,
and BN→conv pairs hidden in untraceable code unless opted in. For Linear → BN the BN is
assumed to normalize the Linear's features, i.e. a (N, features) input, as BatchNorm1d
after Linear does in practice.

The fold equals the original in eval mode only (it bakes in the running statistics).
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Iterable

import torch
from torch import fx, nn

from normnas.nn.batchnorm import BatchNorm, is_batchnorm

FOLDABLE_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class _LeafTracer(fx.Tracer):
    """fx tracer that keeps our BatchNorm a leaf (its forward branches on the input's shape)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, BatchNorm) or super().is_leaf_module(m, module_qualified_name)


def fold_bn(model: nn.Module, pairs: Iterable[tuple[str, str]] = ()) -> nn.Module:
    """Copy of `model` with each BN that directly follows a conv/linear folded into it.

    A folded BN is replaced by `nn.Identity`; a layer without bias gets one. `pairs` adds
    (layer name, BN name) pairs you vouch for. The original model is not changed.
    """
    folded = copy.deepcopy(model)
    explicit = [tuple(p) for p in pairs]
    for layer_name, bn_name in explicit:
        reason = _why_not_foldable(folded, layer_name, bn_name)
        if reason:
            raise ValueError(f"pairs: cannot fold {bn_name!r} into {layer_name!r}: {reason}")
    found = find_foldable_pairs(folded)
    for layer_name, bn_name in dict.fromkeys([*found, *explicit]):
        _fold_into(folded.get_submodule(layer_name), folded.get_submodule(bn_name))
        _replace(folded, bn_name, nn.Identity())
    return folded


def find_foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(layer name, BN name) for every BN that `fold_bn` folds (see the module docstring)."""
    candidates: list[tuple[str, str]] = []
    _collect(model, "", candidates)
    return [(a, b) for a, b in candidates if not _why_not_foldable(model, a, b)]


def _collect(module: nn.Module, prefix: str, out: list[tuple[str, str]]) -> None:
    if isinstance(module, (*FOLDABLE_LAYERS, BatchNorm)) or is_batchnorm(module):
        return
    if not any(is_batchnorm(m) for m in module.modules()):
        return  # nothing to fold below: spare the trace
    graph = _trace(module)
    if graph is not None:
        out.extend((prefix + a, prefix + b) for a, b in _graph_pairs(module, graph))
        return
    if type(module).forward is nn.Sequential.forward:
        names = list(module._modules)
        out.extend((prefix + a, prefix + b) for a, b in itertools.pairwise(names))
    for name, child in module.named_children():
        _collect(child, f"{prefix}{name}.", out)


def _trace(module: nn.Module) -> fx.Graph | None:
    """fx graph of module's forward in eval mode, or None where it cannot be traced."""
    modes = {m: m.training for m in module.modules()}
    module.eval()  # trace the inference path: that is the one the fold must preserve
    try:
        return _LeafTracer().trace(module)
    except Exception:  # any failure (data-dependent control flow, odd signatures) → recurse
        return None
    finally:
        for m, training in modes.items():
            m.training = training


def _graph_pairs(root: nn.Module, graph: fx.Graph) -> list[tuple[str, str]]:
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not is_batchnorm(root.get_submodule(node.target)):
            continue
        if node.kwargs or len(node.args) != 1:
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module":
            continue
        if not isinstance(root.get_submodule(src.target), FOLDABLE_LAYERS):
            continue
        # the layer's output must feed this BN alone, and each module must run only here
        if len(src.users) == 1 and calls[src.target] == 1 and calls[node.target] == 1:
            pairs.append((str(src.target), str(node.target)))
    return pairs


def _why_not_foldable(model: nn.Module, layer_name: str, bn_name: str) -> str:
    """Empty string when the pair can fold, else the reason it cannot."""
    try:
        layer, bn = model.get_submodule(layer_name), model.get_submodule(bn_name)
    except AttributeError as err:
        return str(err)
    if not isinstance(layer, FOLDABLE_LAYERS):
        return f"{type(layer).__name__} is not a Conv1d/2d/3d or Linear"
    if not is_batchnorm(bn):
        return f"{type(bn).__name__} is not a BatchNorm"
    if bn.running_mean is None or bn.running_var is None:
        return "the BN does not track running statistics"
    if nn.parameter.is_lazy(layer.weight) or nn.parameter.is_lazy(bn.running_mean):
        return "uninitialized lazy module"
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if bn.num_features != out:
        return f"BN has {bn.num_features} channels, the layer outputs {out}"
    uses = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    if uses[id(layer)] != 1 or uses[id(bn)] != 1:
        return "a module registered more than once (shared) cannot be changed for one use"
    return ""


@torch.no_grad()
def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """layer(x) := bn_eval(layer(x)): scale each output channel's weights, shift its bias."""
    # float64 so the fold adds no rounding beyond the final cast
    var, mean = bn.running_var.double(), bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(var)
    weight = layer.weight
    # weight is (out, in/groups, *kernel) or (out, in): dim 0 is the output channel either way
    weight.copy_((weight.double() * scale.view(-1, *[1] * (weight.dim() - 1))).to(weight.dtype))
    new_bias = ((bias - mean) * scale + beta).to(weight.dtype)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias, requires_grad=weight.requires_grad)
    else:
        layer.bias.copy_(new_bias)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, new)
