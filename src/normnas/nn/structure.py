"""The channel counts of a network's layers, recorded and re-applied without pickling modules.

A pruned network (`normnas slim`) no longer matches `space.build(arch)`: some convolutions,
norms and linear layers have fewer channels. Its checkpoint therefore carries
`layer_shapes(pruned)`, a plain dict {module name: {attribute: int}} of those layers, and
`apply_layer_shapes(space.build(arch), shapes, state_dict)` turns a freshly built network
into the pruned one: each named layer gets the recorded channel attributes and parameters
and buffers of the shapes in the state dict, which `load_state_dict` then fills. Nothing
but ints and tensors is read, so a checkpoint stays loadable with `weights_only=True`.

Only the layer types below are resized, each by its own attributes; a name that is not in
the network, a layer of another type, or an attribute that is not an int >= 1 is a
ValueError naming it. The forward code of the network must not depend on the channel
counts it was built with (it does not in normnas's spaces: torch-pruning ran it so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from normnas.nn.norm import ChannelLayerNorm

# the channel attributes of each resizable layer type (the first matching type wins)
SHAPE_ATTRS: tuple[tuple[type[nn.Module], tuple[str, ...]], ...] = (
    (nn.modules.conv._ConvNd, ("in_channels", "out_channels", "groups")),
    (nn.Linear, ("in_features", "out_features")),
    (nn.modules.batchnorm._NormBase, ("num_features",)),  # BatchNorm and InstanceNorm
    (nn.GroupNorm, ("num_groups", "num_channels")),
    (ChannelLayerNorm, ("num_features",)),
)


def _attrs_of(module: nn.Module) -> tuple[str, ...] | None:
    for kind, attrs in SHAPE_ATTRS:
        if isinstance(module, kind):
            return attrs
    return None


def layer_shapes(model: nn.Module) -> dict[str, dict[str, int]]:
    """{module name: {channel attribute: value}} of every resizable layer of `model`."""
    out: dict[str, dict[str, int]] = {}
    for name, module in model.named_modules():
        attrs = _attrs_of(module)
        if attrs is not None and name:
            out[name] = {a: int(getattr(module, a)) for a in attrs}
    return out


def changed_shapes(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """The entries of `after` that differ from `before` (what a checkpoint needs to carry)."""
    return {k: dict(v) for k, v in after.items() if dict(before.get(k, {})) != dict(v)}


def apply_layer_shapes(model: nn.Module, shapes: Mapping[str, Mapping[str, Any]]) -> nn.Module:
    """Resize `model`'s layers in place to `shapes` (see the module doc); returns `model`.

    Parameters and buffers of a resized layer become uninitialised tensors of the new
    shapes: load the weights afterwards. ValueError naming the layer for anything unexpected.
    """
    if not isinstance(shapes, Mapping):
        raise ValueError(
            f"layer shapes: a dict of layer names expected, got {type(shapes).__name__}"
        )
    for name, attrs in shapes.items():
        try:
            module = model.get_submodule(str(name)) if name else None
        except AttributeError:
            module = None
        if module is None:
            raise ValueError(f"layer shapes: the network has no layer {name!r}")
        allowed = _attrs_of(module)
        if allowed is None or getattr(module, "transposed", False):
            raise ValueError(
                f"layer shapes: {name} is a {type(module).__name__}, not a resizable layer"
            )
        if not isinstance(attrs, Mapping) or set(attrs) - set(allowed):
            raise ValueError(f"layer shapes: {name} takes only {', '.join(allowed)}")
        for attr, value in attrs.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"layer shapes: {name}.{attr} must be an int >= 1, got {value!r}")
            setattr(module, attr, value)
        for pname, tensor in list(module.named_parameters(recurse=False)):
            new = torch.empty(
                _shape(module, pname, tensor), dtype=tensor.dtype, device=tensor.device
            )
            setattr(module, pname, nn.Parameter(new, requires_grad=tensor.requires_grad))
        for bname, buf in list(module.named_buffers(recurse=False)):
            if buf is not None and buf.dim() > 0:  # num_batches_tracked is a scalar
                module._buffers[bname] = torch.empty(
                    _shape(module, bname, buf), dtype=buf.dtype, device=buf.device
                )
    return model


def _shape(module: nn.Module, name: str, old: torch.Tensor) -> tuple[int, ...]:
    """The shape of `module`'s parameter or buffer `name` for its channel attributes."""
    if isinstance(module, nn.modules.conv._ConvNd):
        if name == "weight":
            return (module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        return (module.out_channels,)
    if isinstance(module, nn.Linear):
        return (
            (module.out_features, module.in_features)
            if name == "weight"
            else (module.out_features,)
        )
    if isinstance(module, nn.GroupNorm):
        return (module.num_channels,)
    if old.dim() != 1:
        raise ValueError(f"layer shapes: {type(module).__name__}.{name} is not per channel")
    return (int(cast(int, module.num_features)),)
