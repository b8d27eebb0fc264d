"""LayerSpace: your own ordered list of layers, each field a value or a list of choices.

A space is a list of layer specs (Python dicts or a YAML file) and the input image size:

    input_size: 8                      # images are 8x8 (or [H, W]); shapes are checked on it
    layers:
      - {type: conv, filters: [16, 32], kernel_size: [3, 5], norm: [bn, gn, none],
         placement: [conv_norm_act, conv_act_norm]}
      - {type: pool, kind: [max, avg], size: 2}
      - {type: conv, filters: [32, 64], repeat: [1, 2, 3]}
      - {type: residual, optional: true, layers: [{type: conv, filters: 64}]}
      - {type: dropout, rate: [0.0, 0.25]}
      - {type: dense, units: [64, 128], optional: true}

Types and their fields (default in brackets; a field without one is required):

- conv: filters, kernel_size [3] (odd: "same" padding), stride [1], norm [batchnorm]
  (any `make_norm` name or alias), placement [conv_norm_act] (conv_act_norm,
  norm_act_conv), activation [relu] (gelu, silu)
- pool: kind [max] (avg), size [2] (window and stride)
- global_pool (average to one value per channel), flatten
- dense: units, activation [relu] (gelu, silu, none); a feature map is flattened first
- norm: norm; activation: activation; dropout: rate in [0, 1)
- residual: layers (a list of specs: conv, norm, activation, dropout, residual) whose
  output is added to the input (a 1x1 conv projects it when the channels change); the
  group keeps the map size, so its convs have stride 1 and it holds no pooling. Groups
  nest: `residual[residual[g]; f]` computes x + f(x + g(x))

Every spec also takes `optional: true` (the layer may be left out) and `repeat: N` or a
list of counts (the layer stacked that many times, the copies sharing its choices; at most
MAX_REPEAT = 256, and the smallest network, every optional layer out and every repeat at
its fewest, at most MAX_LAYERS = 1024 layers, repeats inside repeated groups multiplied). The
network ends with global average pooling (while the output is still a map) and a linear
classifier.

Parameters (Optuna names): `L{i}.on` for an optional layer, `L{i}.repeat`, `L{i}.{field}`
for each field with several choices, and `L{i}.{j}...` inside residual group i. A trial
records only the *active* ones: a layer left out, or parameters of a group left out, are
not asked (so samplers learn nothing from choices that did not matter). `distributions()`
lists them all; `to_params` gives the active ones and `from_params` ignores inactive ones.

Shapes are checked when the space is defined, against `input_size`, for the smallest maps
any architecture can reach (every optional layer in, every repeat at its largest, the
largest strides and pools): a pooling that cannot fit is a one-line ValueError naming the
layer. Bad fields are one-line ValueErrors naming the layer index and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from torch import nn

from normnas.nn import canonical_norm_name
from normnas.spaces._choices import _same, categorical_distributions, pick
from normnas.spaces._layer_model import (
    DENSE_ACTIVATIONS,
    POOLS,
    Layer,
    LayerArch,
    LayerNetwork,
)
from normnas.spaces._macro_model import ACTIVATIONS, PLACEMENTS
from normnas.yaml_io import load_yaml_file

_REQUIRED = object()
# Bounds on depth: a stack deeper than these is a typo (repeat: 10000) or a network no trial
# can build and train in memory and time, so the space is refused when it is defined.
MAX_REPEAT = 256  # the most copies one spec's `repeat` may ask for
MAX_LAYERS = 1024  # the most layers of the space's smallest network (optional ones out,
# every repeat at its fewest, a residual group counting its body's layers)
_COMMON_KEYS = ("type", "optional", "repeat")
_RESIDUAL_BODY = ("conv", "norm", "activation", "dropout", "residual")
_Check = Callable[[Any], Any]  # a field's value -> its canonical form, or ValueError


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected a positive integer")
    return value


def _repeat_count(value: Any) -> int:
    if _positive_int(value) > MAX_REPEAT:
        raise ValueError(f"exceeds the limit of {MAX_REPEAT} copies")
    return value


def _odd_int(value: Any) -> int:
    if _positive_int(value) % 2 == 0:
        raise ValueError("expected an odd positive integer (e.g. 3, 5)")
    return value


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError("expected a rate in [0, 1)")
    return float(value)


def _norm(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a norm name")
    return canonical_norm_name(value)


def _one_of(allowed: Sequence[str]) -> _Check:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {list(allowed)}")
        return value

    return check


FIELDS: dict[str, dict[str, tuple[Any, _Check]]] = {
    "conv": {
        "filters": (_REQUIRED, _positive_int),
        "kernel_size": (3, _odd_int),
        "stride": (1, _positive_int),
        "norm": ("batchnorm", _norm),
        "placement": ("conv_norm_act", _one_of(PLACEMENTS)),
        "activation": ("relu", _one_of(tuple(ACTIVATIONS))),
    },
    "pool": {"kind": ("max", _one_of(tuple(POOLS))), "size": (2, _positive_int)},
    "global_pool": {},
    "flatten": {},
    "dense": {
        "units": (_REQUIRED, _positive_int),
        "activation": ("relu", _one_of(tuple(DENSE_ACTIVATIONS))),
    },
    "norm": {"norm": (_REQUIRED, _norm)},
    "activation": {"activation": (_REQUIRED, _one_of(tuple(ACTIVATIONS)))},
    "dropout": {"rate": (_REQUIRED, _rate)},
    "residual": {},
}
LAYER_TYPES: tuple[str, ...] = tuple(FIELDS)


@dataclass(frozen=True)
class _Spec:
    """One layer spec, checked: each field's choices (one value: fixed), optional, repeats."""

    kind: str
    where: str  # "layers[3]" or "layers[3].layers[1]": how messages name it
    prefix: str  # "L3" or "L3.1": how its parameters are named
    fields: tuple[tuple[str, tuple[Any, ...]], ...]
    optional: bool
    repeats: tuple[int, ...]
    body: tuple[_Spec, ...]

    def choices(self, field: str) -> tuple[Any, ...]:
        return dict(self.fields)[field]

    def own_params(self) -> list[tuple[str, tuple[Any, ...]]]:
        """This spec's parameters (not its body's), in the order `suggest` asks them."""
        out: list[tuple[str, tuple[Any, ...]]] = []
        if self.optional:
            out.append((f"{self.prefix}.on", (False, True)))
        if len(self.repeats) > 1:
            out.append((f"{self.prefix}.repeat", self.repeats))
        out += [(f"{self.prefix}.{f}", c) for f, c in self.fields if len(c) > 1]
        return out

    def all_params(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        yield from self.own_params()
        for child in self.body:
            yield from child.all_params()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        out |= {f: (c[0] if len(c) == 1 else list(c)) for f, c in self.fields}
        if self.optional:
            out["optional"] = True
        if self.repeats != (1,):
            out["repeat"] = self.repeats[0] if len(self.repeats) == 1 else list(self.repeats)
        if self.kind == "residual":
            out["layers"] = [child.to_dict() for child in self.body]
        return out


class LayerSpace:
    """An ordered list of layers whose fields are values or choices (see the module doc)."""

    name = "layers"

    def __init__(
        self, layers: Sequence[Mapping[str, Any]], input_size: int | Sequence[int]
    ) -> None:
        self.input_size = _input_size(input_size)
        if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, Sequence):
            raise ValueError(f"layers: expected a list of layer specs, got {layers!r}")
        if not layers:
            raise ValueError("layers: the list is empty; give at least one layer spec")
        self.specs: tuple[_Spec, ...] = tuple(
            _parse_spec(s, f"layers[{i}]", f"L{i}", _KINDS_ANY) for i, s in enumerate(layers)
        )
        self._choices: dict[str, tuple[Any, ...]] = {
            name: c for spec in self.specs for name, c in spec.all_params()
        }
        _check_depth(self.specs)
        _check_shapes(self.specs, self.input_size)

    # -- configuration -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> LayerSpace:
        """A space from plain data (e.g. parsed YAML): `{input_size: ..., layers: [...]}`."""
        if not isinstance(config, Mapping):
            raise ValueError(f"layers: the config must be a mapping, got {type(config).__name__}")
        unknown = [k for k in config if k not in ("input_size", "layers")]
        if unknown:
            raise ValueError(
                f"layers: unknown key {unknown[0]!r}; allowed keys: ['input_size', 'layers']"
            )
        if "input_size" not in config:
            raise ValueError(
                "input_size: required: the images' height and width (e.g. 8 for digits, "
                "32 for CIFAR-10); the layers' shapes are checked against it"
            )
        if "layers" not in config:
            raise ValueError("layers: required: the list of layer specs")
        return cls(config["layers"], config["input_size"])

    @classmethod
    def from_yaml(cls, path: str | Path) -> LayerSpace:
        """A space from a YAML file; ValueError naming the file and the first bad field."""
        path = Path(path)
        config = load_yaml_file(path)  # ConfigError (a ValueError): file, line, problem
        try:
            return cls.from_dict(config if config is not None else {})
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data; `from_dict(to_dict())` rebuilds the space."""
        return {
            "input_size": list(self.input_size),
            "layers": [spec.to_dict() for spec in self.specs],
        }

    # -- parameters --------------------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        """Every parameter any architecture may record (a trial records the active ones)."""
        return categorical_distributions(self._choices)

    def suggest(self, trial: optuna.Trial) -> LayerArch:
        return LayerArch(_walk(self.specs, trial.suggest_categorical))

    def from_params(self, params: Mapping[str, Any]) -> LayerArch:
        """The architecture of `params`; inactive parameters are ignored, a missing active one
        or a value outside the choices is a ValueError naming it."""
        unknown = [name for name in params if name not in self._choices]
        if unknown:
            raise ValueError(
                f"layers: unknown parameter {unknown[0]!r}; expected some of {list(self._choices)}"
            )

        def ask(name: str, choices: Sequence[Any]) -> Any:
            if name not in params:
                raise ValueError(f"layers: missing parameter {name!r}")
            return _match(name, params[name], choices)

        return LayerArch(_walk(self.specs, ask))

    def to_params(self, arch: LayerArch) -> dict[str, Any]:
        """The active parameters of `arch`: what a trial of it records."""
        self.validate(arch)
        return _params(self.specs, arch.layers, full=False)

    def full_params(self, arch: LayerArch) -> dict[str, Any]:
        """Every parameter: the active ones of `arch`, the first choice for the others."""
        self.validate(arch)
        return _params(self.specs, arch.layers, full=True)

    def validate(self, arch: LayerArch) -> LayerArch:
        """`arch` itself; ValueError naming the first layer or value outside this space."""
        if not isinstance(arch, LayerArch):
            raise ValueError(f"layers: expected a LayerArch, got {type(arch).__name__}")
        _validate(self.specs, arch.layers, "layers")
        return arch

    # -- strings -----------------------------------------------------------------------------
    def to_str(self, arch: LayerArch) -> str:
        """E.g. `conv(filters=16, kernel_size=3, ...) | pool(kind=max, size=2) x2 | -`:
        layers separated by ` | `, `-` for an optional layer left out, ` xN` for repeats,
        `residual[layer; layer]` for a group."""
        self.validate(arch)
        pairs = zip(self.specs, arch.layers, strict=True)
        return " | ".join(_layer_str(s, layer) for s, layer in pairs)

    def from_str(self, text: str) -> LayerArch:
        items = _split(text, "|")
        if len(items) != len(self.specs):
            raise ValueError(
                f"layers: {text!r} has {len(items)} layers separated by ' | '; "
                f"the space has {len(self.specs)}"
            )
        pairs = zip(self.specs, items, strict=True)
        arch = LayerArch(tuple(_parse_layer(s, item) for s, item in pairs))
        return self.validate(arch)

    # -- sampling and moves ------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> LayerArch:
        return LayerArch(_walk(self.specs, lambda name, choices: pick(rng, choices)))

    def _moves(self, arch: LayerArch, name: str) -> list[LayerArch]:
        """The archs that change only the active parameter `name` and compute something else."""
        active = self.to_params(arch)
        if name not in active:
            return []
        full = self.full_params(arch)
        seen = {self.canonical(arch)}
        moves = []
        for value in self._choices[name]:
            if _same(value, active[name]):
                continue
            other = self.from_params({**full, name: value})
            if self.canonical(other) not in seen:
                seen.add(self.canonical(other))
                moves.append(other)
        return moves

    def mutate(self, arch: LayerArch, rng: np.random.Generator) -> LayerArch:
        """Change one active choice (a uniformly drawn parameter, then a new value for it);
        changes that `canonical` undoes are never made, so the child computes something else.
        A layer switched on, or made deeper, takes each field's first choice."""
        names = list(self._choices)
        for k in rng.permutation(len(names)):
            moves = self._moves(arch, names[int(k)])
            if moves:
                return pick(rng, moves)
        raise ValueError("layers: no active parameter has another choice; nothing to mutate")

    def neighbors(self, arch: LayerArch) -> list[LayerArch]:
        """Every arch one active choice away, no two computing the same (by `canonical`)."""
        out: dict[LayerArch, LayerArch] = {}
        for name in self._choices:
            for other in self._moves(arch, name):
                out.setdefault(self.canonical(other), other)
        return list(out.values())

    def canonical(self, arch: LayerArch) -> LayerArch:
        """One encoding per function: a conv without a norm computes conv -> act whether the
        placement says conv_norm_act or conv_act_norm (the first is kept when it is a
        choice), and an optional dropout of rate 0 is the same as leaving it out."""
        self.validate(arch)
        return LayerArch(_canonical(self.specs, arch.layers))

    def size(self) -> int:
        """How many architectures the space holds: distinct ones under `canonical`
        (counted from the specs, exact, no enumeration; see `_count`)."""
        return math.prod(_count(spec) for spec in self.specs)

    # -- the network -------------------------------------------------------------------------
    def build(self, arch: LayerArch, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        self.validate(arch)
        return LayerNetwork(arch, self.input_size, num_classes, in_channels)


def norm_layers(arch: LayerArch) -> list[tuple[str, str | None]]:
    """(norm, placement) of every conv and norm layer of `arch` in order, repeats included;
    placement is None for a norm layer of its own."""
    out: list[tuple[str, str | None]] = []

    def walk(layers: Sequence[Layer | None]) -> None:
        for layer in layers:
            if layer is None:
                continue
            for _ in range(layer.repeat):
                if layer.kind == "conv":
                    out.append((layer.get("norm"), layer.get("placement")))
                elif layer.kind == "norm":
                    out.append((layer.get("norm"), None))
                walk(layer.body)

    walk(arch.layers)
    return out


# -- walking the specs ----------------------------------------------------------------------
_Ask = Callable[[str, Sequence[Any]], Any]


def _walk(specs: Sequence[_Spec], ask: _Ask) -> tuple[Layer | None, ...]:
    """The layers chosen by `ask(name, choices)`, asked only for active parameters."""
    return tuple(_walk_one(spec, ask) for spec in specs)


def _walk_one(spec: _Spec, ask: _Ask) -> Layer | None:
    if spec.optional and not ask(f"{spec.prefix}.on", (False, True)):
        return None
    repeats = spec.repeats
    repeat = ask(f"{spec.prefix}.repeat", repeats) if len(repeats) > 1 else repeats[0]
    values = tuple(
        (f, ask(f"{spec.prefix}.{f}", c) if len(c) > 1 else c[0]) for f, c in spec.fields
    )
    return Layer(spec.kind, values, repeat, _walk(spec.body, ask))


def _params(specs: Sequence[_Spec], layers: Sequence[Layer | None], full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec, layer in zip(specs, layers, strict=True):
        if layer is None:
            out[f"{spec.prefix}.on"] = False
            if full:  # the rest of the layer, with first choices
                out |= {n: c[0] for n, c in spec.all_params() if n not in out}
            continue
        if spec.optional:
            out[f"{spec.prefix}.on"] = True
        if len(spec.repeats) > 1:
            out[f"{spec.prefix}.repeat"] = layer.repeat
        out |= {f"{spec.prefix}.{f}": layer.get(f) for f, c in spec.fields if len(c) > 1}
        out |= _params(spec.body, layer.body, full)
    return out


def _match(name: str, value: Any, choices: Sequence[Any]) -> Any:
    for choice in choices:
        if _same(value, choice):
            return choice
    raise ValueError(f"layers: {name}={value!r} is not one of {list(choices)}")


def _validate(specs: Sequence[_Spec], layers: Any, where: str) -> None:
    if not isinstance(layers, tuple) or len(layers) != len(specs):
        n = len(layers) if isinstance(layers, tuple) else type(layers).__name__
        raise ValueError(f"layers: {where} holds {n} layers; the space has {len(specs)}")
    for spec, layer in zip(specs, layers, strict=True):
        if layer is None:
            if not spec.optional:
                raise ValueError(f"layers: {spec.where} is not optional; it cannot be left out")
            continue
        if not isinstance(layer, Layer) or layer.kind != spec.kind:
            raise ValueError(f"layers: {spec.where} must be a {spec.kind} layer, got {layer!r}")
        if layer.repeat not in spec.repeats:
            raise ValueError(
                f"layers: {spec.where}.repeat={layer.repeat!r} is not one of {list(spec.repeats)}"
            )
        if [f for f, _ in layer.values] != [f for f, _ in spec.fields]:
            raise ValueError(
                f"layers: {spec.where} ({spec.kind}) must have the fields "
                f"{[f for f, _ in spec.fields]}, got {[f for f, _ in layer.values]}"
            )
        for (f, value), (_, choices) in zip(layer.values, spec.fields, strict=True):
            if not any(_same(value, c) for c in choices):
                raise ValueError(
                    f"layers: {spec.where}.{f}={value!r} is not one of {list(choices)}"
                )
        _validate(spec.body, layer.body, spec.where)


def _canonical(specs: Sequence[_Spec], layers: Sequence[Layer | None]) -> tuple[Layer | None, ...]:
    out: list[Layer | None] = []
    for spec, layer in zip(specs, layers, strict=True):
        if layer is None:
            out.append(None)
            continue
        values = dict(layer.values)
        if (
            spec.kind == "conv"
            and values["norm"] == "none"
            and values["placement"] == "conv_act_norm"
            and "conv_norm_act" in spec.choices("placement")
        ):
            values["placement"] = "conv_norm_act"
        if spec.kind == "dropout" and spec.optional and values["rate"] == 0:
            out.append(None)
            continue
        body = _canonical(spec.body, layer.body)
        out.append(Layer(layer.kind, tuple(values.items()), layer.repeat, body))
    return tuple(out)


def _count(spec: _Spec) -> int:
    """The distinct layers `spec` can be (under `_canonical`), its body's choices included."""
    fields = math.prod(len(choices) for _, choices in spec.fields)
    if spec.kind == "conv":
        placements = spec.choices("placement")
        if (
            "none" in spec.choices("norm")
            and "conv_act_norm" in placements
            and "conv_norm_act" in placements
        ):
            # (none, conv_act_norm) is (none, conv_norm_act): one pair less per other choice
            fields -= fields // (len(spec.choices("norm")) * len(placements))
    present = len(spec.repeats) * fields * math.prod(_count(child) for child in spec.body)
    if spec.kind == "dropout" and spec.optional and any(r == 0 for r in spec.choices("rate")):
        present -= len(spec.repeats)  # an optional dropout of rate 0 is the layer left out
    return present + int(spec.optional)


# -- strings --------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _layer_str(spec: _Spec, layer: Layer | None) -> str:
    if layer is None:
        return "-"
    if spec.kind == "residual":
        body = (_layer_str(s, x) for s, x in zip(spec.body, layer.body, strict=True))
        text = "residual[" + "; ".join(body) + "]"
    else:
        text = f"{spec.kind}(" + ", ".join(f"{f}={_fmt(v)}" for f, v in layer.values) + ")"
    return text if layer.repeat == 1 else f"{text} x{layer.repeat}"


def _split(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside brackets and parentheses, each part stripped."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


_LAYER_RE = re.compile(r"(?P<kind>\w+)(?P<open>[(\[])(?P<inner>.*)[)\]](?:\s+x(?P<repeat>\d+))?")


def _parse_layer(spec: _Spec, text: str) -> Layer | None:
    if text == "-":
        return None
    match = _LAYER_RE.fullmatch(text)
    if match is None or match["kind"] != spec.kind:
        raise ValueError(f"layers: {spec.where}: {text!r} is not a {spec.kind} layer")
    repeat = int(match["repeat"] or 1)
    inner = match["inner"].strip()
    if spec.kind == "residual":
        items = _split(inner, ";") if spec.body else []
        if len(items) != len(spec.body):
            raise ValueError(
                f"layers: {spec.where}: {text!r} has {len(items)} layers; the group has "
                f"{len(spec.body)}"
            )
        body = tuple(_parse_layer(s, item) for s, item in zip(spec.body, items, strict=True))
        return Layer(spec.kind, (), repeat, body)
    given: dict[str, str] = {}
    for item in _split(inner, ",") if inner else []:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"layers: {spec.where}: {item!r} is not field=value")
        given[key.strip()] = value.strip()
    if list(given) != [f for f, _ in spec.fields]:
        raise ValueError(
            f"layers: {spec.where}: {text!r} must list the fields {[f for f, _ in spec.fields]}"
        )
    values = []
    for f, choices in spec.fields:
        found = [c for c in choices if _fmt(c) == given[f]]
        if not found:
            raise ValueError(f"layers: {spec.where}.{f}={given[f]} is not one of {list(choices)}")
        values.append((f, found[0]))
    return Layer(spec.kind, tuple(values), repeat, ())


# -- parsing and checking the configuration -------------------------------------------------
_KINDS_ANY = LAYER_TYPES


def _input_size(value: Any) -> tuple[int, int]:
    sizes = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    ok = (
        isinstance(sizes, (list, tuple))
        and len(sizes) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)
    )
    if not ok:
        raise ValueError(
            f"input_size: expected the image size as a positive integer or [height, width], "
            f"got {value!r}"
        )
    return (sizes[0], sizes[1])


def _parse_spec(raw: Any, where: str, prefix: str, kinds: Sequence[str]) -> _Spec:
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"{where}: expected a mapping like {{type: conv, filters: 32}}, got {raw!r}"
        )
    kind = raw.get("type")
    if kind not in FIELDS:
        raise ValueError(f"{where}: type: {kind!r} is not one of {list(LAYER_TYPES)}")
    if kind not in kinds:
        raise ValueError(
            f"{where} ({kind}): a residual group keeps the map size and may hold only "
            f"{', '.join(kinds)} layers; put the {kind} outside the group"
        )
    label = f"{where} ({kind})"
    allowed = [*_COMMON_KEYS, *FIELDS[kind], *(["layers"] if kind == "residual" else [])]
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ValueError(f"{label}: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
    fields = []
    for field, (default, check) in FIELDS[kind].items():
        if field not in raw and default is _REQUIRED:
            raise ValueError(f"{label}: {field} is required")
        fields.append((field, _choices(label, field, raw.get(field, default), check)))
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise ValueError(f"{label}: optional: expected true or false, got {optional!r}")
    repeats = _choices(label, "repeat", raw.get("repeat", 1), _repeat_count)
    body: tuple[_Spec, ...] = ()
    if kind == "residual":
        children = raw.get("layers")
        if isinstance(children, (str, bytes, Mapping)) or not isinstance(children, list):
            raise ValueError(f"{label}: layers: expected a non-empty list of layer specs")
        if not children:
            raise ValueError(f"{label}: layers: expected a non-empty list of layer specs")
        body = tuple(
            _parse_spec(c, f"{where}.layers[{j}]", f"{prefix}.{j}", _RESIDUAL_BODY)
            for j, c in enumerate(children)
        )
    return _Spec(kind, where, prefix, tuple(fields), optional, repeats, body)


def _choices(label: str, field: str, value: Any, check: _Check) -> tuple[Any, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"{label}: {field}: the list of choices is empty")
    out = []
    for v in values:
        try:
            out.append(check(v))
        except ValueError as e:
            raise ValueError(f"{label}: {field}: {e}, got {v!r}") from None
    if len(set(out)) != len(out):
        raise ValueError(f"{label}: {field}: a choice is repeated: {out}")
    return tuple(out)


def _smallest_depth(specs: Sequence[_Spec]) -> int:
    """Layers of the smallest network: optional layers out, every repeat at its fewest."""
    total = 0
    for spec in specs:
        if not spec.optional:
            own = _smallest_depth(spec.body) if spec.kind == "residual" else 1
            total += min(spec.repeats) * own
    return total


def _check_depth(specs: Sequence[_Spec]) -> None:
    """ValueError when even the smallest network is deeper than MAX_LAYERS (repeats inside
    repeated residual groups multiply, so each repeat within MAX_REPEAT is not enough)."""
    depth = _smallest_depth(specs)
    if depth > MAX_LAYERS:
        raise ValueError(
            f"layers: the smallest network of this space has {depth:,} layers (every optional "
            f"layer out, every repeat at its fewest), over the limit of {MAX_LAYERS:,}; use "
            "fewer repeats"
        )


def _check_shapes(specs: Sequence[_Spec], size: tuple[int, int]) -> None:
    """ValueError naming the first layer that cannot take the smallest input it can get."""
    h, w = size
    spatial = True
    for spec in specs:
        label = f"{spec.where} ({spec.kind})"
        for _ in range(max(spec.repeats)):
            if spec.kind in ("conv", "pool", "norm", "residual", "global_pool") and not spatial:
                raise ValueError(
                    f"{label}: needs a feature map, but an earlier dense, flatten or "
                    "global_pool layer made it a vector"
                )
            if spec.kind == "conv":
                s = max(spec.choices("stride"))
                h, w = math.ceil(h / s), math.ceil(w / s)
            elif spec.kind == "pool":
                k = max(spec.choices("size"))
                if h < k or w < k:
                    raise ValueError(
                        f"{label}: a {k}x{k} pool does not fit the {h}x{w} map it can get "
                        f"from {size[0]}x{size[1]} images (every optional layer in, every "
                        "repeat at its most); use a smaller size, fewer pools or larger images"
                    )
                h, w = h // k, w // k
            elif spec.kind in ("dense", "flatten", "global_pool"):
                spatial = False
            elif spec.kind == "residual":
                _check_residual(spec)
            if spatial and h * w == 1 and _has_instance_norm(spec):
                raise ValueError(
                    f"{label}: instance norm cannot train on the 1x1 map this layer can get "
                    f"from {size[0]}x{size[1]} images; drop instancenorm here or pool less"
                )


def _check_residual(spec: _Spec) -> None:
    for child in spec.body:
        if child.kind == "conv" and child.choices("stride") != (1,):
            raise ValueError(
                f"{child.where} (conv): stride: a residual group keeps the map size; "
                f"use stride 1 inside it, got {list(child.choices('stride'))}"
            )
        if child.kind == "residual":
            _check_residual(child)


def _has_instance_norm(spec: _Spec) -> bool:
    own = "norm" in dict(spec.fields) and "instancenorm" in spec.choices("norm")
    return own or any(_has_instance_norm(child) for child in spec.body)
