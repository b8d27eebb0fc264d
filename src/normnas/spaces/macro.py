"""MacroSpace: a chain of conv stages where width, kernel, norm, its placement, activation,
residual and depth are all choices."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from torch import nn

from normnas.nn import NORM_NAMES, canonical_norm_name
from normnas.spaces._choices import categorical_distributions, check_params, pick, suggest_all
from normnas.spaces._macro_model import ACTIVATIONS, PLACEMENTS, Block, MacroArch, MacroNetwork
from normnas.yaml_io import load_yaml_file

BLOCK_FIELDS: tuple[str, ...] = ("width", "kernel", "norm", "placement", "activation", "residual")
_BLOCK_RE = re.compile(r"w(\d+)-k(\d+)-(\w+)-(\w+)-(\w+)-(res|plain)")
_STAGE_RE = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class StageSpec:
    """One stage: its block widths to choose from, its depth range, its first block's stride."""

    widths: tuple[int, ...]
    min_blocks: int = 1
    max_blocks: int = 2
    stride: int = 2


# 8x8 digits -> 8, 4, 2 and 32x32 CIFAR -> 32, 16, 8: never a 1x1 map before a norm
DEFAULT_STAGES: tuple[StageSpec, ...] = (
    StageSpec(widths=(16, 24, 32), min_blocks=1, max_blocks=2, stride=1),
    StageSpec(widths=(32, 48, 64), min_blocks=1, max_blocks=2, stride=2),
    StageSpec(widths=(64, 96, 128), min_blocks=1, max_blocks=2, stride=2),
)
_STAGE_KEYS = ("widths", "min_blocks", "max_blocks", "stride")
_SPACE_KEYS = (
    "stages", "kernels", "norms", "placements", "activations", "residual", "dropout",
    "stem_width",
)  # fmt: skip


class MacroSpace:
    """A chain of stages of conv blocks; normalization and its placement are per-block choices.

    Each stage downsamples in its first block (`stride`; the default first stage keeps the
    resolution so 8x8 digits end at 2x2, never 1x1 where instance norm cannot train) and has
    `min_blocks..max_blocks` blocks: the depth parameter `s{i}.depth` decides how many are
    used, the rest are skipped. Each block chooses width, kernel, norm (any `make_norm` name),
    placement (`conv_norm_act`, `conv_act_norm`, `norm_act_conv`), activation and residual
    (1x1 projection when shapes differ). Head: global average pooling, dropout, linear.

    Optuna parameters: `s{i}.depth`, `s{i}.b{j}.{field}` for each block slot and
    `head.dropout`. A trial records only the *active* ones (define-by-run): a slot beyond
    its stage's depth is not asked, so importances, samplers and the dashboard never see
    choices that did not matter. `distributions()` lists them all; `to_params` gives the
    active ones, `full_params` every one (the first choice for a skipped slot), and
    `from_params` ignores a skipped slot's parameters.
    """

    name = "macro"

    def __init__(
        self,
        stages: Sequence[StageSpec | Mapping[str, Any]] = DEFAULT_STAGES,
        kernels: Sequence[int] = (3, 5),
        norms: Sequence[str] = NORM_NAMES,
        placements: Sequence[str] = PLACEMENTS,
        activations: Sequence[str] = tuple(ACTIVATIONS),
        residual: Sequence[bool] = (False, True),
        dropout: Sequence[float] = (0.0, 0.2),
        stem_width: int = 16,
    ) -> None:
        self.stages = tuple(_stage(i, s) for i, s in enumerate(_nonempty("stages", stages)))
        self.kernels = tuple(_ints("kernels", kernels, odd=True))
        self.norms = tuple(_norm(n) for n in _nonempty("norms", norms))
        self.placements = tuple(
            _member("placements", p, PLACEMENTS) for p in _nonempty("placements", placements)
        )
        self.activations = tuple(
            _member("activations", a, tuple(ACTIVATIONS))
            for a in _nonempty("activations", activations)
        )
        self.residual = tuple(_bool("residual", r) for r in _nonempty("residual", residual))
        self.dropout = tuple(_prob("dropout", p) for p in _nonempty("dropout", dropout))
        for field in ("kernels", "norms", "placements", "activations", "residual", "dropout"):
            values = getattr(self, field)
            if len(set(values)) != len(values):
                raise ValueError(f"macro: {field} has a repeated value: {list(values)}")
        if not isinstance(stem_width, int) or isinstance(stem_width, bool) or stem_width < 0:
            raise ValueError(
                f"macro: stem_width must be an integer >= 0 (0: no stem), got {stem_width!r}"
            )
        self.stem_width = stem_width

    # -- configuration -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> MacroSpace:
        """A space from a plain dict (e.g. parsed YAML) with keys as the constructor's."""
        if not isinstance(config, Mapping):
            raise ValueError(f"macro: the config must be a mapping, got {type(config).__name__}")
        unknown = [k for k in config if k not in _SPACE_KEYS]
        if unknown:
            raise ValueError(
                f"macro: unknown key {unknown[0]!r}; allowed keys: {list(_SPACE_KEYS)}"
            )
        return cls(**dict(config))

    @classmethod
    def from_yaml(cls, path: str | Path) -> MacroSpace:
        config = load_yaml_file(path)  # ConfigError (a ValueError): file, line, problem
        return cls.from_dict(config or {})

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data; `from_dict(to_dict())` rebuilds the space."""
        return {
            "stages": [
                {"widths": list(s.widths), "min_blocks": s.min_blocks,
                 "max_blocks": s.max_blocks, "stride": s.stride}
                for s in self.stages
            ],
            "kernels": list(self.kernels),
            "norms": list(self.norms),
            "placements": list(self.placements),
            "activations": list(self.activations),
            "residual": list(self.residual),
            "dropout": list(self.dropout),
            "stem_width": self.stem_width,
        }  # fmt: skip

    # -- parameters --------------------------------------------------------------------------
    def _field_choices(self, stage: int) -> dict[str, tuple[Any, ...]]:
        return {
            "width": self.stages[stage].widths,
            "kernel": self.kernels,
            "norm": self.norms,
            "placement": self.placements,
            "activation": self.activations,
            "residual": self.residual,
        }

    def _choices(self) -> dict[str, tuple[Any, ...]]:
        choices: dict[str, tuple[Any, ...]] = {}
        for i, spec in enumerate(self.stages):
            choices[f"s{i}.depth"] = tuple(range(spec.min_blocks, spec.max_blocks + 1))
            for j in range(spec.max_blocks):
                for field, values in self._field_choices(i).items():
                    choices[f"s{i}.b{j}.{field}"] = values
        choices["head.dropout"] = self.dropout
        return choices

    def distributions(self) -> dict[str, BaseDistribution]:
        return categorical_distributions(self._choices())

    def suggest(self, trial: optuna.Trial) -> MacroArch:
        """Ask the trial for each stage's depth, then only for the blocks that depth uses."""
        choices = self._choices()
        params: dict[str, Any] = {}
        for i in range(len(self.stages)):
            depth = params[f"s{i}.depth"] = trial.suggest_categorical(
                f"s{i}.depth", choices[f"s{i}.depth"]
            )
            for j in range(depth):
                params.update(suggest_all(trial, self._slot_choices(i, j)))
        params["head.dropout"] = trial.suggest_categorical("head.dropout", self.dropout)
        return self.from_params(params)

    def _slot_choices(self, stage: int, slot: int) -> dict[str, tuple[Any, ...]]:
        return {f"s{stage}.b{slot}.{f}": v for f, v in self._field_choices(stage).items()}

    def from_params(self, params: Mapping[str, Any]) -> MacroArch:
        """The architecture of `params`; a skipped slot's parameters may be missing (and are
        ignored), a missing active one or a value outside the choices is a ValueError."""
        choices = self._choices()
        depths = {
            f"s{i}.depth": params[f"s{i}.depth"]
            for i in range(len(self.stages))
            if f"s{i}.depth" in params
        }
        check_params(self.name, depths, {k: choices[k] for k in depths})
        # the names this architecture needs: its depths, its active slots and the head
        active = {n: v for n, v in choices.items() if self._active(n, {**params, **depths})}
        unknown = [name for name in params if name not in choices]
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter {unknown[0]!r}; expected some of {list(choices)}"
            )
        check_params(self.name, {n: params[n] for n in active if n in params}, active)
        stages = tuple(
            tuple(
                Block(**{f: params[f"s{i}.b{j}.{f}"] for f in BLOCK_FIELDS})
                for j in range(params[f"s{i}.depth"])
            )
            for i in range(len(self.stages))
        )
        return MacroArch(stages=stages, dropout=params["head.dropout"])

    def to_params(self, arch: MacroArch) -> dict[str, Any]:
        """The active parameters of `arch`: what a trial of it records."""
        full = self.full_params(arch)
        return {name: value for name, value in full.items() if self._active(name, full)}

    def full_params(self, arch: MacroArch) -> dict[str, Any]:
        """Every parameter: the active ones of `arch`, the default block in skipped slots."""
        self.validate(arch)
        params: dict[str, Any] = {}
        for i, spec in enumerate(self.stages):
            params[f"s{i}.depth"] = len(arch.stages[i])
            for j in range(spec.max_blocks):
                block = arch.stages[i][j] if j < len(arch.stages[i]) else self.default_block(i)
                for field in BLOCK_FIELDS:
                    params[f"s{i}.b{j}.{field}"] = getattr(block, field)
        params["head.dropout"] = arch.dropout
        return params

    def default_block(self, stage: int) -> Block:
        """The block a skipped slot encodes as, and the one a deeper stage gains: first choices."""
        return Block(**{f: v[0] for f, v in self._field_choices(stage).items()})

    def validate(self, arch: MacroArch) -> MacroArch:
        """`arch` itself; ValueError naming the first choice outside this space."""
        if not isinstance(arch, MacroArch):
            raise ValueError(f"macro: expected a MacroArch, got {type(arch).__name__}")
        if len(arch.stages) != len(self.stages):
            raise ValueError(f"macro: {len(arch.stages)} stages, the space has {len(self.stages)}")
        for i, (stage, spec) in enumerate(zip(arch.stages, self.stages, strict=True)):
            if not spec.min_blocks <= len(stage) <= spec.max_blocks:
                raise ValueError(
                    f"macro: s{i}.depth={len(stage)} is not in "
                    f"{list(range(spec.min_blocks, spec.max_blocks + 1))}"
                )
            for j, block in enumerate(stage):
                for field, values in self._field_choices(i).items():
                    value = getattr(block, field)
                    if value not in values or type(value) is not type(values[0]):
                        raise ValueError(
                            f"macro: s{i}.b{j}.{field}={value!r} is not one of {list(values)}"
                        )
        if arch.dropout not in self.dropout:
            raise ValueError(
                f"macro: head.dropout={arch.dropout!r} is not one of {list(self.dropout)}"
            )
        return arch

    # -- strings -----------------------------------------------------------------------------
    def to_str(self, arch: MacroArch) -> str:
        """E.g. `[w16-k3-batchnorm-conv_norm_act-relu-plain] [w32-k5-none-norm_act_conv-gelu-res,
        w32-k3-groupnorm-conv_act_norm-silu-plain] [...] dropout=0.2`."""
        self.validate(arch)
        stages = " ".join("[" + ", ".join(_block_str(b) for b in s) + "]" for s in arch.stages)
        return f"{stages} dropout={arch.dropout!r}"

    def from_str(self, text: str) -> MacroArch:
        body, sep, dropout = text.strip().rpartition(" dropout=")
        stages = _STAGE_RE.findall(body)
        if not sep or _STAGE_RE.sub("", body).strip() or not stages:
            raise ValueError(f"macro: {text!r} is not of the form '[block, ...] [...] dropout=P'")
        try:
            arch = MacroArch(
                stages=tuple(tuple(_parse_block(b) for b in s.split(",")) for s in stages),
                dropout=float(dropout),
            )
        except ValueError as err:
            raise ValueError(f"macro: cannot read {text!r}: {err}") from None
        return self.validate(arch)

    # -- sampling and moves ------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> MacroArch:
        params = {name: pick(rng, values) for name, values in self._choices().items()}
        return self.from_params(params)

    def _moves(self, arch: MacroArch, name: str) -> list[MacroArch]:
        """The archs that change only parameter `name` and compute something else."""
        params = self.full_params(arch)
        if not self._active(name, params):
            return []
        seen = {self.canonical(arch)}
        moves = []
        for value in self._choices()[name]:
            if value == params[name] and type(value) is type(params[name]):
                continue
            other = self.from_params({**params, name: value})
            if self.canonical(other) not in seen:
                seen.add(self.canonical(other))
                moves.append(other)
        return moves

    def mutate(self, arch: MacroArch, rng: np.random.Generator) -> MacroArch:
        """Change one active choice: a uniformly drawn parameter, then a new value for it.

        Parameters of skipped slots, single-choice parameters and changes that `canonical`
        would undo are never drawn, so the child always computes something else.
        """
        names = list(self._choices())
        for k in rng.permutation(len(names)):
            moves = self._moves(arch, names[int(k)])
            if moves:
                return pick(rng, moves)
        raise ValueError("macro: every parameter has a single choice; nothing to mutate")

    def neighbors(self, arch: MacroArch) -> list[MacroArch]:
        """Every arch one active choice away (skipped slots are not choices), no duplicates."""
        return [a for name in self._choices() for a in self._moves(arch, name)]

    def canonical(self, arch: MacroArch) -> MacroArch:
        """One encoding per function: skipped blocks are never stored (so their choices cannot
        differ), and a block without a norm has one placement for conv -> act: `conv_act_norm`
        becomes `conv_norm_act` when that placement is in the space."""
        self.validate(arch)
        if "conv_norm_act" not in self.placements:
            return arch

        def canon(b: Block) -> Block:
            if b.norm == "none" and b.placement == "conv_act_norm":
                return Block(b.width, b.kernel, b.norm, "conv_norm_act", b.activation, b.residual)
            return b

        return MacroArch(tuple(tuple(canon(b) for b in s) for s in arch.stages), arch.dropout)

    def size(self) -> int:
        """How many architectures the space holds: distinct ones under `canonical`.

        Counted from the choice lists (exact, no enumeration): per block the product of its
        fields' choices, less the (none, conv_act_norm) pair that `canonical` merges into
        conv_norm_act; per stage the sum over its depths; times the dropout choices.
        """
        merged = (
            "none" in self.norms
            and "conv_act_norm" in self.placements
            and "conv_norm_act" in self.placements
        )
        norm_placements = len(self.norms) * len(self.placements) - int(merged)
        block_rest = len(self.kernels) * len(self.activations) * len(self.residual)
        total = len(self.dropout)
        for spec in self.stages:
            blocks = len(spec.widths) * block_rest * norm_placements
            total *= sum(blocks**depth for depth in range(spec.min_blocks, spec.max_blocks + 1))
        return total

    def _active(self, name: str, params: Mapping[str, Any]) -> bool:
        if name.count(".") < 2:  # s{i}.depth, head.dropout
            return True
        stage, slot, _ = name.split(".")
        depth = params.get(f"{stage}.depth")
        return isinstance(depth, int) and int(slot[1:]) < depth

    # -- the network -------------------------------------------------------------------------
    @property
    def min_image_size(self) -> int:
        """Smallest input side keeping every feature map at least 2x2 (instance norm cannot
        train on 1x1 maps): a k x k conv with padding k//2 and stride s gives ceil(H / s)."""
        return math.prod(s.stride for s in self.stages) + 1

    def build(self, arch: MacroArch, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        self.validate(arch)
        strides = [s.stride for s in self.stages]
        return MacroNetwork(arch, strides, self.stem_width, num_classes, in_channels)


def _block_str(b: Block) -> str:
    tail = "res" if b.residual else "plain"
    return f"w{b.width}-k{b.kernel}-{b.norm}-{b.placement}-{b.activation}-{tail}"


def _parse_block(text: str) -> Block:
    match = _BLOCK_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"block {text.strip()!r} is not 'wW-kK-norm-placement-activation-res|plain'"
        )
    w, k, norm, placement, activation, tail = match.groups()
    return Block(int(w), int(k), norm, placement, activation, tail == "res")


# -- config validation: one-line errors naming the field and what it allows -----------------
def _nonempty(field: str, values: Any) -> Sequence[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"macro: {field} must be a non-empty list, got {values!r}")
    return values


def _ints(field: str, values: Any, odd: bool = False) -> list[int]:
    out = []
    for v in _nonempty(field, values):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1 or (odd and v % 2 == 0):
            kind = "odd positive integers (e.g. 3, 5)" if odd else "positive integers"
            raise ValueError(f"macro: {field} must be {kind}, got {v!r}")
        out.append(v)
    return out


def _norm(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError(f"macro: norms: {name!r} is not one of {list(NORM_NAMES)}")
    try:
        return canonical_norm_name(name)
    except ValueError:
        raise ValueError(
            f"macro: norms: unknown norm {name!r}; allowed: {list(NORM_NAMES)}"
        ) from None


def _member(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"macro: {field}: {value!r} is not one of {list(allowed)}")
    return value


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"macro: {field}: {value!r} is not one of [False, True]")
    return value


def _prob(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"macro: {field}: {value!r} must be a probability in [0, 1)")
    return float(value)


def _stage(i: int, spec: StageSpec | Mapping[str, Any]) -> StageSpec:
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in _STAGE_KEYS]
        if unknown:
            raise ValueError(
                f"macro: stages[{i}]: unknown key {unknown[0]!r}; allowed keys: {list(_STAGE_KEYS)}"
            )
        if "widths" not in spec:
            raise ValueError(f"macro: stages[{i}].widths is required (a list of channel counts)")
        spec = StageSpec(**{**spec, "widths": tuple(_ints(f"stages[{i}].widths", spec["widths"]))})
    elif not isinstance(spec, StageSpec):
        raise ValueError(f"macro: stages[{i}] must be a StageSpec or a mapping, got {spec!r}")
    widths = tuple(_ints(f"stages[{i}].widths", spec.widths))
    if len(set(widths)) != len(widths):
        raise ValueError(f"macro: stages[{i}].widths has a repeated value: {list(widths)}")
    for key in ("min_blocks", "max_blocks", "stride"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"macro: stages[{i}].{key} must be an integer >= 1, got {value!r}")
    if spec.min_blocks > spec.max_blocks:
        raise ValueError(
            f"macro: stages[{i}].min_blocks={spec.min_blocks} exceeds max_blocks={spec.max_blocks}"
        )
    return StageSpec(widths, spec.min_blocks, spec.max_blocks, spec.stride)
