"""The found model as a Keras 3 model (a `.keras` file) with its trained weights.

How it maps: the PyTorch model is traced with `torch.fx` and every call becomes one Keras
layer of the same maths, so any network made of the layers below converts, whatever space
built it (macro chains with their norm placements and residuals, NB201 cells).

Conventions:
- Layout: the Keras model is channels_last, the Keras default: it takes (N, H, W, C)
  images, i.e. `x.permute(0, 2, 3, 1)` of what the PyTorch model takes, normalized the
  same way (the checkpoint's `mean`/`std`). Conv kernels are transposed to (kH, kW, in,
  out), Linear weights to (in, out); a flatten of a map larger than 1x1 first permutes to
  channels-first so the Dense layer after it sees PyTorch's feature order.
- Padding: a conv whose PyTorch padding equals Keras's "same" (stride 1, symmetric) uses
  it; any other padding is an explicit `ZeroPadding2D` and a "valid" conv, so strided
  convs pad exactly as PyTorch does (Keras's "same" pads more on the bottom/right).
- BatchNorm → `BatchNormalization(axis=-1)` with the same epsilon and running statistics
  and momentum = 1 − PyTorch's momentum: PyTorch updates `running = (1 − m)·running +
  m·batch`, Keras `moving = momentum·moving + (1 − momentum)·batch`, so PyTorch's default
  0.1 is Keras's 0.9. The momentum the model was trained with (the recipe's `bn_momentum`
  in a joint space) is used. A BN with momentum None (cumulative average) or without
  running statistics has no Keras equivalent: ExportError.
- GroupNorm → `GroupNormalization(groups, axis=-1)`; InstanceNorm → `GroupNormalization
  (groups=C)` (one group per channel is instance norm; with `track_running_stats` it is a
  `BatchNormalization` over the running statistics instead); normnas's channel LayerNorm
  → `LayerNormalization(axis=-1)`; epsilon and affine carry over (Keras adds epsilon to the
  variance inside the square root, as PyTorch does).
- Avg pool without counting padding (`count_include_pad=False`, NB201's 3x3) → Keras's
  "same" pooling, which does not count it either; global average pooling, ReLU/GELU
  (exact)/SiLU, dropout, Linear → Dense, `+` → Add, a node with no input (NB201's zero) →
  `Rescaling(0)`. Identity and dropout of 0 add no layer.
- Anything else is a one-line ExportError naming the layer and its type.

Keras runs on its PyTorch backend (`KERAS_BACKEND=torch` is set here before Keras is first
imported), so no TensorFlow is needed; the saved `.keras` file holds only standard layers
and loads with `keras.saving.load_model` on any backend. Needs the `keras` extra.
"""

from __future__ import annotations

import operator
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from normnas.errors import ExportError, one_line
from normnas.export._common import (
    Exported,
    check_close,
    check_inputs,
    fold_note,
    max_difference,
    require,
    torch_outputs,
)
from normnas.nn import ChannelLayerNorm, fold_bn, is_batchnorm, set_bn_momentum

BACKEND = "torch"
# layers converted whole: the tracer must not step into them
LEAVES: tuple[type[nn.Module], ...] = (
    nn.Conv2d, nn.Linear, nn.GroupNorm, nn.InstanceNorm2d, ChannelLayerNorm, nn.LayerNorm,
    nn.ReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Identity, nn.AvgPool2d,
    nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten,
)  # fmt: skip
ACTIVATION_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.silu: "silu", torch.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.gelu: "gelu",
}  # fmt: skip
ACTIVATION_METHODS = ("relu", "sigmoid", "tanh")
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)

Tensor = Any  # a symbolic Keras tensor


def keras_module() -> Any:
    """Keras 3 on its PyTorch backend, or an ExportError telling what to install or set."""
    if sys.modules.get("keras") is None:
        # before the first import: the backend is fixed when keras is imported
        os.environ["KERAS_BACKEND"] = BACKEND
    (keras,) = require(("keras",), "keras", "keras")
    version = getattr(keras, "__version__", "0")
    if int(version.split(".")[0]) < 3:
        raise ExportError(f"--format keras needs Keras 3, found {version}; pip install 'keras>=3'")
    backend = keras.backend.backend()
    if backend != BACKEND:
        raise ExportError(
            f"keras was imported with the {backend} backend before normnas; --format keras "
            f"builds on the torch backend: set KERAS_BACKEND=torch before importing keras"
        )
    return keras


def to_keras(model: nn.Module, input_shape: Sequence[int], name: str = "normnas") -> Any:
    """Keras model of eval-mode `model` for (C, H, W) inputs `input_shape`, weights copied.

    The Keras model takes channels-last (N, H, W, C) images (see the module doc).
    ExportError naming the first layer or call that has no Keras equivalent.
    """
    keras = keras_module()
    model.eval()
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # any tracing failure: data-dependent control flow, odd signatures
        raise ExportError(
            f"cannot trace {type(model).__name__} to map it to Keras ({one_line(e)})"
        ) from None
    module = fx.GraphModule(model, graph)
    with torch.no_grad():
        ShapeProp(module).propagate(torch.zeros(1, *input_shape))
    return _Builder(keras, module).build(name)


def keras_outputs(keras_model: Any, x: torch.Tensor) -> np.ndarray:
    """`keras_model`'s inference outputs for (N, C, H, W) images `x` (fed as N, H, W, C)."""
    keras = keras_module()
    nhwc = x.detach().cpu().permute(0, 2, 3, 1).numpy()
    out = keras_model(nhwc, training=False)
    if isinstance(out, torch.Tensor):  # the torch backend's own tensors
        return out.detach().cpu().numpy().astype(np.float32)
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)


def export_keras(
    checkpoint: str | Path,
    out: str | Path,
    inputs: torch.Tensor | None = None,
    fold: bool = False,
) -> Exported:
    """Write the checkpoint's model to `out` (a `.keras` file) as a Keras 3 model.

    `fold=True` folds conv → BN pairs first (fewer layers; no BN left to fine-tune there).
    Before writing, the Keras model's outputs must equal PyTorch's within `TOLERANCE` on
    `inputs` (N, C, H, W, normalized; default 16 seeded N(0, 1) images). ExportError when
    keras is missing, `out` is not a writable `.keras` path, the checkpoint cannot be read,
    a layer cannot be mapped, or the outputs differ.
    """
    from normnas.search.final import _write_whole, load, prepare_out

    keras = keras_module()  # a missing extra fails before any work
    out = prepare_out(out, "model.keras")
    if out.suffix != ".keras":
        raise ExportError(f"{out}: a Keras model file must end in .keras (--out)")
    model, ckpt = load(checkpoint)
    momentum = (ckpt.get("recipe") or {}).get("bn_momentum")
    if momentum is not None:  # the space builds BN at 0.1; the model trained with this one
        set_bn_momentum(model, float(momentum))
    exported = fold_bn(model).eval() if fold else model
    keras_model = to_keras(exported, (ckpt["in_channels"], *ckpt["image_size"]))
    x = check_inputs(ckpt) if inputs is None else inputs
    difference = max_difference(keras_outputs(keras_model, x), torch_outputs(model, x))
    check_close(out, "Keras", difference)
    with tempfile.TemporaryDirectory() as tmp:
        # Keras saves to a named .keras path only; the bytes then go through the atomic writer
        staged = Path(tmp) / "model.keras"
        with warnings.catch_warnings():
            # Keras's variables predate numpy 2's copy keyword; numpy notes it per weight
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            keras.saving.save_model(keras_model, staged)
        data = staged.read_bytes()
    path = _write_whole(out, lambda f: f.write(data))
    note = (
        f"keras {keras.__version__}, channels_last input (N, H, W, C), "
        f"{len(keras_model.layers)} layers{', ' + fold_note(model, exported) if fold else ''}; "
        f"Keras equals PyTorch within {difference:.1e} on {len(x)} inputs"
    )
    return Exported(path, "keras", note)


class _Tracer(fx.Tracer):
    """Keeps every layer we convert whole (and any BatchNorm) a leaf of the trace."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, LEAVES) or is_batchnorm(m):
            return True
        return super().is_leaf_module(m, module_qualified_name)


class _Builder:
    """Walks a shape-propagated fx graph in order, making the Keras tensor of each node."""

    def __init__(self, keras: Any, module: fx.GraphModule) -> None:
        self.keras = keras
        self.layers = keras.layers
        self.module = module
        self.env: dict[fx.Node, Tensor] = {}

    def build(self, name: str) -> Any:
        inputs: Tensor = None
        outputs: Tensor = None
        for node in self.module.graph.nodes:
            if node.op == "placeholder":
                if inputs is not None:
                    raise ExportError(f"cannot map a model with more than one input ({node.name})")
                inputs = self.layers.Input(shape=_keras_shape(node)[1:], name="input")
                self.env[node] = inputs
            elif node.op == "output":
                outputs = self.env[node.args[0]]
            else:
                self.env[node] = self._convert(node)
        return self.keras.Model(inputs, outputs, name=name)

    def _convert(self, node: fx.Node) -> Tensor:
        try:
            tensor = self._dispatch(node)
        except ExportError:
            raise
        except (ValueError, TypeError, NotImplementedError, AttributeError) as e:
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: {one_line(e)}"
            ) from None
        expected = _keras_shape(node)
        if tuple(tensor.shape[1:]) != tuple(expected[1:]):
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: it gives shape "
                f"{tuple(tensor.shape[1:])}, PyTorch's is {tuple(expected[1:])} (channels last)"
            )
        return tensor

    def _dispatch(self, node: fx.Node) -> Tensor:
        if node.op == "call_module":
            module = self.module.get_submodule(str(node.target))
            return self._module(module, node)
        if node.op == "call_function":
            return self._function(node)
        if node.op == "call_method":
            return self._method(node)
        raise ExportError(f"cannot map {_what(self.module, node)} to Keras (no Keras layer)")

    # -- arguments ---------------------------------------------------------------------------
    def _arg(self, node: fx.Node, i: int = 0) -> Tensor:
        arg = node.args[i]
        if not isinstance(arg, fx.Node):
            raise ExportError(f"cannot map {_what(self.module, node)} to Keras: a constant input")
        return self.env[arg]

    def _rank(self, node: fx.Node, i: int = 0) -> int:
        return len(_torch_shape(node.args[i]))

    # -- modules -----------------------------------------------------------------------------
    def _module(self, m: nn.Module, node: fx.Node) -> Tensor:
        x, name = self._arg(node), node.name
        if isinstance(m, (nn.Identity,)) or (isinstance(m, nn.Dropout) and m.p == 0):
            return x
        converters: dict[type[nn.Module], Callable[[Any, Tensor, str, fx.Node], Tensor]] = {
            nn.Conv2d: self._conv,
            nn.Linear: self._linear,
            nn.GroupNorm: self._groupnorm,
            nn.InstanceNorm2d: self._instancenorm,
            ChannelLayerNorm: self._layernorm,
            nn.LayerNorm: self._layernorm,
            nn.AvgPool2d: self._avgpool,
            nn.MaxPool2d: self._maxpool,
            nn.AdaptiveAvgPool2d: self._global_pool,
            nn.Flatten: self._flatten_module,
        }
        if is_batchnorm(m):
            return self._batchnorm(m, x, name, node)
        for kind, convert in converters.items():
            if isinstance(m, kind):
                return convert(m, x, name, node)
        activation = _activation_name(m)
        if activation is not None:
            return self.layers.Activation(activation, name=name)(x)
        if isinstance(m, nn.Dropout):
            return self.layers.Dropout(m.p, name=name)(x)
        raise ExportError(f"cannot map {_what(self.module, node)} to Keras (no Keras layer)")

    def _conv(self, m: nn.Conv2d, x: Tensor, name: str, node: fx.Node) -> Tensor:
        if m.padding_mode != "zeros":
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: padding_mode "
                f"{m.padding_mode!r} (Keras pads with zeros only)"
            )
        padding = _conv_padding(m)
        if isinstance(padding, tuple):
            x = self.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
            padding = "valid"
        layer = self.layers.Conv2D(
            m.out_channels,
            m.kernel_size,
            strides=m.stride,
            padding=padding,
            dilation_rate=m.dilation,
            groups=m.groups,
            use_bias=m.bias is not None,
            name=name,
        )
        y = layer(x)
        weights = [_numpy(m.weight).transpose(2, 3, 1, 0)]  # (out, in, kh, kw) → (kh, kw, in, out)
        layer.set_weights(weights + ([_numpy(m.bias)] if m.bias is not None else []))
        return y

    def _linear(self, m: nn.Linear, x: Tensor, name: str, node: fx.Node) -> Tensor:
        if self._rank(node) != 2:
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: Linear on a "
                f"{self._rank(node)}-d input (only (N, features) keeps its meaning channels last)"
            )
        layer = self.layers.Dense(m.out_features, use_bias=m.bias is not None, name=name)
        y = layer(x)
        layer.set_weights([_numpy(m.weight).T] + ([_numpy(m.bias)] if m.bias is not None else []))
        return y

    def _batchnorm(self, m: nn.Module, x: Tensor, name: str, node: fx.Node) -> Tensor:
        if m.running_mean is None or m.running_var is None:
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: it tracks no running "
                f"statistics (normalizes with batch statistics at inference)"
            )
        return self._bn_layer(m, x, name, node, affine=m.weight is not None)

    def _bn_layer(self, m: nn.Module, x: Tensor, name: str, node: fx.Node, affine: bool) -> Tensor:
        if self._rank(node) not in (2, 4):
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: a {self._rank(node)}-d input"
            )
        if m.momentum is None:
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: momentum None (a cumulative "
                "average) has no Keras equivalent; set one with normnas.nn.set_bn_momentum"
            )
        layer = self.layers.BatchNormalization(
            axis=-1,
            momentum=1.0 - float(m.momentum),  # see the module doc: Keras's is 1 − PyTorch's
            epsilon=float(m.eps),
            center=affine,
            scale=affine,
            name=name,
        )
        y = layer(x)
        params = [_numpy(m.weight), _numpy(m.bias)] if affine else []
        layer.set_weights([*params, _numpy(m.running_mean), _numpy(m.running_var)])
        return y

    def _groupnorm(self, m: nn.GroupNorm, x: Tensor, name: str, node: fx.Node) -> Tensor:
        return self._groups(m.num_groups, float(m.eps), m.weight, m.bias, x, name)

    def _instancenorm(self, m: nn.InstanceNorm2d, x: Tensor, name: str, node: fx.Node) -> Tensor:
        if m.track_running_stats:  # eval mode then normalizes with the running statistics
            return self._bn_layer(m, x, name, node, affine=m.affine)
        return self._groups(m.num_features, float(m.eps), m.weight, m.bias, x, name)

    def _groups(
        self,
        groups: int,
        eps: float,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        x: Tensor,
        name: str,
    ) -> Tensor:
        affine = weight is not None
        layer = self.layers.GroupNormalization(
            groups=groups, axis=-1, epsilon=eps, center=affine, scale=affine, name=name
        )
        y = layer(x)
        if affine:
            layer.set_weights([_numpy(weight), _numpy(bias)])
        return y

    def _layernorm(self, m: nn.Module, x: Tensor, name: str, node: fx.Node) -> Tensor:
        if isinstance(m, nn.LayerNorm) and (self._rank(node) != 2 or len(m.normalized_shape) != 1):
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: LayerNorm over "
                f"{tuple(m.normalized_shape)} of a {self._rank(node)}-d input (only (N, features))"
            )
        weight = m.weight
        bias = m.bias
        layer = self.layers.LayerNormalization(
            axis=-1,
            epsilon=float(m.eps),
            center=bias is not None,
            scale=weight is not None,
            name=name,
        )
        y = layer(x)
        layer.set_weights(
            [_numpy(w) for w in (weight, bias) if w is not None]  # Keras's order: gamma, beta
        )
        return y

    def _avgpool(self, m: nn.AvgPool2d, x: Tensor, name: str, node: fx.Node) -> Tensor:
        k, s, p = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)
        if m.divisor_override:
            raise ExportError(f"cannot map {_what(self.module, node)} to Keras: divisor_override")
        if p == (0, 0):
            return self.layers.AveragePooling2D(k, s, padding="valid", name=name)(x)
        if m.count_include_pad:  # the zeros count: pad them explicitly
            x = self.layers.ZeroPadding2D(p, name=f"{name}_pad")(x)
            return self.layers.AveragePooling2D(k, s, padding="valid", name=name)(x)
        if _same(k, s, p):
            return self.layers.AveragePooling2D(k, s, padding="same", name=name)(x)
        raise ExportError(
            f"cannot map {_what(self.module, node)} to Keras: padding {p} not counted, with "
            f"kernel {k} and stride {s} (only Keras's 'same' at stride 1 excludes padding)"
        )

    def _maxpool(self, m: nn.MaxPool2d, x: Tensor, name: str, node: fx.Node) -> Tensor:
        k, s, p = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)
        if _pair(m.dilation) != (1, 1) or m.return_indices:
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: dilation or return_indices"
            )
        if p == (0, 0):
            return self.layers.MaxPooling2D(k, s, padding="valid", name=name)(x)
        if _same(k, s, p):
            return self.layers.MaxPooling2D(k, s, padding="same", name=name)(x)
        raise ExportError(
            f"cannot map {_what(self.module, node)} to Keras: padding {p} with kernel {k} "
            f"and stride {s}"
        )

    def _global_pool(self, m: nn.Module, x: Tensor, name: str, node: fx.Node) -> Tensor:
        h, w = _torch_shape(node.args[0])[2:]
        out_h, out_w = _torch_shape(node)[2:]
        if (out_h, out_w) == (h, w):
            return x
        if (out_h, out_w) != (1, 1):
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: adaptive pooling to "
                f"{(out_h, out_w)} (only to 1x1)"
            )
        return self.layers.GlobalAveragePooling2D(keepdims=True, name=name)(x)

    def _flatten_module(self, m: nn.Flatten, x: Tensor, name: str, node: fx.Node) -> Tensor:
        return self._flatten(node, x, name, m.start_dim, m.end_dim)

    def _flatten(self, node: fx.Node, x: Tensor, name: str, start: int, end: int) -> Tensor:
        rank = self._rank(node)
        if start != 1 or end not in (-1, rank - 1):
            raise ExportError(
                f"cannot map {_what(self.module, node)} to Keras: flatten of dims "
                f"{start}..{end} (only 1..-1, the batch kept)"
            )
        if rank == 4 and tuple(_torch_shape(node.args[0])[2:]) != (1, 1):
            # PyTorch flattens (C, H, W) in that order: go back to channels first before it
            x = self.layers.Permute((3, 1, 2), name=f"{name}_chw")(x)
        return self.layers.Flatten(name=name)(x) if rank > 2 else x

    # -- functions and methods ---------------------------------------------------------------
    def _function(self, node: fx.Node) -> Tensor:
        target = node.target
        if target in ADD_FUNCTIONS and len(node.args) == 2 and not node.kwargs:
            return self.layers.Add(name=node.name)([self._arg(node, 0), self._arg(node, 1)])
        if target is torch.zeros_like:
            # NB201's zero node: 0·x keeps the shape (and is a standard, serializable layer)
            return self.layers.Rescaling(0.0, name=node.name)(self._arg(node))
        if target is torch.flatten:
            start = _option(node, 1, "start_dim", 0)
            end = _option(node, 2, "end_dim", -1)
            return self._flatten(node, self._arg(node), node.name, start, end)
        if target is torch.cat:
            return self._cat(node)
        if target in ACTIVATION_FUNCTIONS:
            if target is F.gelu and node.kwargs.get("approximate", "none") != "none":
                raise ExportError(f"cannot map {_what(self.module, node)} to Keras: tanh GELU")
            return self.layers.Activation(ACTIVATION_FUNCTIONS[target], name=node.name)(
                self._arg(node)
            )
        raise ExportError(f"cannot map {_what(self.module, node)} to Keras (no Keras layer)")

    def _method(self, node: fx.Node) -> Tensor:
        method = str(node.target)
        if method == "flatten":
            start = _option(node, 1, "start_dim", 0)
            end = _option(node, 2, "end_dim", -1)
            return self._flatten(node, self._arg(node), node.name, start, end)
        if method in ("add", "__add__") and len(node.args) == 2 and not node.kwargs:
            return self.layers.Add(name=node.name)([self._arg(node, 0), self._arg(node, 1)])
        if method in ACTIVATION_METHODS:
            return self.layers.Activation(method, name=node.name)(self._arg(node))
        raise ExportError(f"cannot map {_what(self.module, node)} to Keras (no Keras layer)")

    def _cat(self, node: fx.Node) -> Tensor:
        tensors = node.args[0]
        dim = _option(node, 1, "dim", 0)
        if not isinstance(tensors, (list, tuple)) or not all(
            isinstance(t, fx.Node) for t in tensors
        ):
            raise ExportError(f"cannot map {_what(self.module, node)} to Keras: constant inputs")
        rank = len(_torch_shape(tensors[0]))
        axis = _keras_axis(dim, rank)
        return self.layers.Concatenate(axis=axis, name=node.name)([self.env[t] for t in tensors])


def _activation_name(m: nn.Module) -> str | None:
    if isinstance(m, nn.GELU):
        if m.approximate != "none":
            raise ExportError(f"cannot map GELU(approximate={m.approximate!r}) to Keras")
        return "gelu"
    names = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
    return next((name for kind, name in names.items() if isinstance(m, kind)), None)


def _conv_padding(m: nn.Conv2d) -> str | tuple[int, int]:
    """Keras's padding word when it pads as PyTorch does, else PyTorch's (rows, cols) pad."""
    if isinstance(m.padding, str):
        return m.padding  # PyTorch's 'same' (stride 1 only) and 'valid' are Keras's
    k, s, p, d = m.kernel_size, m.stride, m.padding, m.dilation
    if p == (0, 0):
        return "valid"
    if _same(tuple(d[i] * (k[i] - 1) + 1 for i in range(2)), s, p):
        return "same"
    return (int(p[0]), int(p[1]))


def _same(kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]) -> bool:
    """PyTorch's symmetric `padding` equals Keras's 'same' (stride 1, odd kernel, k // 2)."""
    return tuple(stride) == (1, 1) and all(
        2 * p == k - 1 for k, p in zip(kernel, padding, strict=True)
    )


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _option(node: fx.Node, i: int, key: str, default: Any) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def _keras_axis(dim: int, rank: int) -> int:
    """The channels-last axis of PyTorch dim `dim` of a `rank`-d (N, C, ...) tensor."""
    dim = dim % rank
    if rank != 4 or dim == 0:
        return dim
    return {1: 3, 2: 1, 3: 2}[dim]


def _torch_shape(node: Any) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    if meta is None or not hasattr(meta, "shape"):
        raise ExportError(f"cannot map {getattr(node, 'name', node)} to Keras: not one tensor")
    return tuple(int(s) for s in meta.shape)


def _keras_shape(node: fx.Node) -> tuple[int, ...]:
    """The channels-last shape of `node`'s PyTorch (N, C, H, W) output (others unchanged)."""
    shape = _torch_shape(node)
    if len(shape) == 4:
        n, c, h, w = shape
        return (n, h, w, c)
    return shape


def _what(module: fx.GraphModule, node: fx.Node) -> str:
    """`name (Type)` of the layer or call a node is, as the user knows it."""
    if node.op == "call_module":
        layer = module.get_submodule(str(node.target))
        return f"layer {node.target} ({type(layer).__name__})"
    target = getattr(node.target, "__name__", str(node.target))
    kind = "method" if node.op == "call_method" else "call"
    return f"{kind} {target} at {node.name}"


def _numpy(t: torch.Tensor | None) -> np.ndarray:
    assert t is not None
    return t.detach().cpu().numpy().astype(np.float32)
