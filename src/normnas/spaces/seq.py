"""SeqSpace: networks for (N, C, T) sequences whose blocks are 1-D convolutions or transformer
encoder blocks, each with its own norm and placement."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from torch import nn

from normnas.nn.norm import ALL_NORM_NAMES, canonical_norm_name
from normnas.spaces._choices import categorical_distributions, check_params, pick, suggest_all
from normnas.spaces._seq_model import KINDS, SEQ_PLACEMENTS, SeqArch, SeqBlock, SeqNetwork
from normnas.yaml_io import load_yaml_file

# the norms a sequence space searches by default: the image spaces' InstanceNorm is left
# out (per-channel statistics over time erase the level of a univariate series)
SEQ_NORMS: tuple[str, ...] = ("batchnorm", "layernorm", "rmsnorm", "groupnorm", "none")
COMMON_FIELDS: tuple[str, ...] = ("kind", "width", "norm", "placement")
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "conv": ("kernel", "dilation"),
    "attn": ("heads", "mlp_ratio"),
}
_CONV_RE = re.compile(r"conv-w(\d+)-k(\d+)-d(\d+)-(\w+?)-(post_act|post|pre)")
_ATTN_RE = re.compile(r"attn-w(\d+)-h(\d+)-m(\d+)-(\w+?)-(post_act|post|pre)")
_STAGE_RE = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class SeqStageSpec:
    """One stage: block widths to choose from, its depth range, and the average pool (stride
    `pool`) that shortens the sequence before it (1: none)."""

    widths: tuple[int, ...]
    min_blocks: int = 1
    max_blocks: int = 2
    pool: int = 1


DEFAULT_SEQ_STAGES: tuple[SeqStageSpec, ...] = (
    SeqStageSpec(widths=(32, 64), min_blocks=1, max_blocks=2, pool=1),
    SeqStageSpec(widths=(64, 128), min_blocks=1, max_blocks=2, pool=2),
)
# what a search of this space trains with unless the run config says otherwise: UCR-sized
# data (tens to hundreds of series) needs many small steps, and AdamW suits the attention
# blocks (measured: GunPoint, ItalyPowerDemand, BasicMotions, docs/guides/sequences.md)
SEQ_TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100, "batch_size": 16, "optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-2,
}  # fmt: skip
SEQ_VALID_FRACTION = 0.2  # 0.1 of GunPoint's 50 series would be 5: a 20-point accuracy step
_STAGE_KEYS = ("widths", "min_blocks", "max_blocks", "pool")
_SPACE_KEYS = (
    "stages", "kinds", "kernels", "dilations", "heads", "mlp_ratios", "norms", "placements",
    "dropout", "stem_width", "stem_kernel",
)  # fmt: skip


class SeqSpace:
    """A stem conv, stages of blocks, global average pooling over time, dropout, a linear head.

    Each block is a residual 1-D conv block (kernel, dilation) or a transformer encoder block
    (heads, MLP ratio), with its width, norm (any `make_norm` name, applied to (N, C, T))
    and placement (`post`, `pre`, `post_act`: see `normnas.spaces._seq_model`). A stage
    may shorten the sequence first (`pool`). Depth per stage is a choice, as in MacroSpace.

    Optuna parameters: `s{i}.depth`; per block slot `s{i}.b{j}.kind`, `.width`, `.norm`,
    `.placement`, then `.kernel` and `.dilation` for a conv block or `.heads` and
    `.mlp_ratio` for a transformer block; `head.dropout`. A trial records only the active
    ones (a slot beyond its stage's depth, the other kind's fields); `full_params` gives
    every one (first choices where inactive).
    """

    name = "seq"
    input_rank = 1  # one spatial axis: (N, C, T) sequences, not images

    def __init__(
        self,
        stages: Sequence[SeqStageSpec | Mapping[str, Any]] = DEFAULT_SEQ_STAGES,
        kinds: Sequence[str] = KINDS,
        kernels: Sequence[int] = (3, 5, 7),
        dilations: Sequence[int] = (1, 2),
        heads: Sequence[int] = (2, 4),
        mlp_ratios: Sequence[int] = (2, 4),
        norms: Sequence[str] = SEQ_NORMS,
        placements: Sequence[str] = SEQ_PLACEMENTS,
        dropout: Sequence[float] = (0.0, 0.2),
        stem_width: int = 32,
        stem_kernel: int = 7,
    ) -> None:
        self.stages = tuple(_stage(i, s) for i, s in enumerate(_nonempty("stages", stages)))
        self.kinds = tuple(_member("kinds", k, KINDS) for k in _nonempty("kinds", kinds))
        self.kernels = tuple(_ints("kernels", kernels, odd=True))
        self.dilations = tuple(_ints("dilations", dilations))
        self.heads = tuple(_ints("heads", heads))
        self.mlp_ratios = tuple(_ints("mlp_ratios", mlp_ratios))
        self.norms = tuple(_norm(n) for n in _nonempty("norms", norms))
        self.placements = tuple(
            _member("placements", p, SEQ_PLACEMENTS) for p in _nonempty("placements", placements)
        )
        self.dropout = tuple(_prob(p) for p in _nonempty("dropout", dropout))
        for field in ("kinds", "kernels", "dilations", "heads", "mlp_ratios", "norms",
                      "placements", "dropout"):  # fmt: skip
            values = getattr(self, field)
            if len(set(values)) != len(values):
                raise ValueError(f"seq: {field} has a repeated value: {list(values)}")
        if "attn" in self.kinds:
            for i, spec in enumerate(self.stages):
                for w in spec.widths:
                    bad = [h for h in self.heads if w % h]
                    if bad:
                        raise ValueError(
                            f"seq: stages[{i}].widths: {w} is not divisible by heads={bad[0]} "
                            "(a transformer block splits its width among its heads)"
                        )
        for key, value, low in (("stem_width", stem_width, 0), ("stem_kernel", stem_kernel, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"seq: {key} must be an integer >= {low}, got {value!r}")
        if stem_kernel % 2 == 0:
            raise ValueError(f"seq: stem_kernel must be odd (same length out), got {stem_kernel}")
        self.stem_width, self.stem_kernel = stem_width, stem_kernel

    # -- configuration -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> SeqSpace:
        """A space from a plain dict (e.g. parsed YAML) with keys as the constructor's."""
        if not isinstance(config, Mapping):
            raise ValueError(f"seq: the config must be a mapping, got {type(config).__name__}")
        unknown = [k for k in config if k not in _SPACE_KEYS]
        if unknown:
            raise ValueError(f"seq: unknown key {unknown[0]!r}; allowed keys: {list(_SPACE_KEYS)}")
        return cls(**dict(config))

    @classmethod
    def from_yaml(cls, path: str | Path) -> SeqSpace:
        return cls.from_dict(load_yaml_file(path) or {})

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data; `from_dict(to_dict())` rebuilds the space."""
        return {
            "stages": [
                {"widths": list(s.widths), "min_blocks": s.min_blocks,
                 "max_blocks": s.max_blocks, "pool": s.pool}
                for s in self.stages
            ],
            "kinds": list(self.kinds),
            "kernels": list(self.kernels),
            "dilations": list(self.dilations),
            "heads": list(self.heads),
            "mlp_ratios": list(self.mlp_ratios),
            "norms": list(self.norms),
            "placements": list(self.placements),
            "dropout": list(self.dropout),
            "stem_width": self.stem_width,
            "stem_kernel": self.stem_kernel,
        }  # fmt: skip

    def widened(self, arch: SeqArch) -> SeqSpace:
        """This space with every norm and placement (and dropout 0 / 0.2), holding `arch`:
        what an ablation varies its blocks in."""
        config = self.to_dict()
        config["norms"] = list(dict.fromkeys([*self.norms, *ALL_NORM_NAMES]))
        config["placements"] = list(SEQ_PLACEMENTS)
        config["dropout"] = list(dict.fromkeys([arch.dropout, *self.dropout, 0.0, 0.2]))
        space = SeqSpace.from_dict(config)
        space.validate_arch(arch)
        return space

    @classmethod
    def fitted(cls, arch: SeqArch, pools: Sequence[int] | None = None) -> SeqSpace:
        """The smallest space holding `arch` with every norm and placement (stage pools:
        `pools`, default 1 then 2 for each later stage, as the default space)."""
        blocks = [b for s in arch.stages for b in s]

        def used(field: str, default: Sequence[int]) -> list[int]:
            return list(
                dict.fromkeys(getattr(b, field) for b in blocks if getattr(b, field))
            ) or list(default)

        pools = list(pools) if pools is not None else [1] + [2] * (len(arch.stages) - 1)
        return cls(
            stages=[
                {
                    "widths": list(dict.fromkeys(b.width for b in s)),
                    "min_blocks": len(s),
                    "max_blocks": len(s),
                    "pool": p,
                }
                for s, p in zip(arch.stages, pools, strict=True)
            ],
            kinds=list(dict.fromkeys(b.kind for b in blocks)),
            kernels=used("kernel", (3,)),
            dilations=used("dilation", (1,)),
            heads=used("heads", (1,)),
            mlp_ratios=used("mlp_ratio", (2,)),
            norms=ALL_NORM_NAMES,
            placements=SEQ_PLACEMENTS,
            dropout=list(dict.fromkeys([arch.dropout, 0.0, 0.2])),
        )

    # -- parameters --------------------------------------------------------------------------
    def _field_choices(self, stage: int) -> dict[str, tuple[Any, ...]]:
        return {
            "kind": self.kinds,
            "width": self.stages[stage].widths,
            "norm": self.norms,
            "placement": self.placements,
            "kernel": self.kernels,
            "dilation": self.dilations,
            "heads": self.heads,
            "mlp_ratio": self.mlp_ratios,
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

    def suggest(self, trial: optuna.Trial) -> SeqArch:
        """Depth per stage, then per used slot its kind, then only that kind's fields."""
        params: dict[str, Any] = {}
        for i, spec in enumerate(self.stages):
            depth = params[f"s{i}.depth"] = trial.suggest_categorical(
                f"s{i}.depth", tuple(range(spec.min_blocks, spec.max_blocks + 1))
            )
            fields = self._field_choices(i)
            for j in range(depth):
                kind = params[f"s{i}.b{j}.kind"] = trial.suggest_categorical(
                    f"s{i}.b{j}.kind", self.kinds
                )
                names = [f for f in COMMON_FIELDS[1:]] + list(KIND_FIELDS[kind])
                params.update(suggest_all(trial, {f"s{i}.b{j}.{f}": fields[f] for f in names}))
        params["head.dropout"] = trial.suggest_categorical("head.dropout", self.dropout)
        return self.from_params(params)

    def _active(self, name: str, params: Mapping[str, Any]) -> bool:
        if name.count(".") < 2:  # s{i}.depth, head.dropout
            return True
        stage, slot, field = name.split(".")
        depth = params.get(f"{stage}.depth")
        if not isinstance(depth, int) or int(slot[1:]) >= depth:
            return False
        if field in COMMON_FIELDS:
            return True
        kind = params.get(f"{stage}.{slot}.kind")
        return kind in KIND_FIELDS and field in KIND_FIELDS[kind]

    def from_params(self, params: Mapping[str, Any]) -> SeqArch:
        """The architecture of `params`; inactive parameters may be missing (and are ignored),
        a missing active one or a value outside the choices is a ValueError."""
        choices = self._choices()
        unknown = [name for name in params if name not in choices]
        if unknown:
            raise ValueError(
                f"seq: unknown parameter {unknown[0]!r}; expected some of {list(choices)}"
            )
        depths: dict[str, Any] = {
            f"s{i}.depth": params.get(f"s{i}.depth") for i in range(len(self.stages))
        }
        check_params(self.name, depths, {k: choices[k] for k in depths})
        kinds = {
            f"s{i}.b{j}.kind": params.get(f"s{i}.b{j}.kind")
            for i in range(len(self.stages))
            for j in range(depths[f"s{i}.depth"])
        }
        check_params(self.name, kinds, {k: choices[k] for k in kinds})
        active = {n: v for n, v in choices.items() if self._active(n, params)}
        check_params(self.name, {n: params[n] for n in active if n in params}, active)
        stages = tuple(
            tuple(self._block(params, f"s{i}.b{j}.") for j in range(params[f"s{i}.depth"]))
            for i in range(len(self.stages))
        )
        return SeqArch(stages, params["head.dropout"])

    @staticmethod
    def _block(params: Mapping[str, Any], prefix: str) -> SeqBlock:
        kind = params[prefix + "kind"]
        fields = {f: params[prefix + f] for f in (*COMMON_FIELDS, *KIND_FIELDS[kind])}
        return SeqBlock(**fields)

    def to_params(self, arch: SeqArch) -> dict[str, Any]:
        """The active parameters of `arch`: what a trial of it records."""
        full = self.full_params(arch)
        return {name: value for name, value in full.items() if self._active(name, full)}

    def full_params(self, arch: SeqArch) -> dict[str, Any]:
        """Every parameter: the active ones of `arch`, first choices where inactive."""
        self.validate_arch(arch)
        params: dict[str, Any] = {}
        for i, spec in enumerate(self.stages):
            params[f"s{i}.depth"] = len(arch.stages[i])
            first = {f: v[0] for f, v in self._field_choices(i).items()}
            for j in range(spec.max_blocks):
                values = dict(first)
                if j < len(arch.stages[i]):
                    block = arch.stages[i][j]
                    for f in (*COMMON_FIELDS, *KIND_FIELDS[block.kind]):
                        values[f] = getattr(block, f)
                for f, v in values.items():
                    params[f"s{i}.b{j}.{f}"] = v
        params["head.dropout"] = arch.dropout
        return params

    def validate_arch(self, arch: SeqArch) -> SeqArch:
        """`arch` itself; ValueError naming the first choice outside this space."""
        if not isinstance(arch, SeqArch):
            raise ValueError(f"seq: expected a SeqArch, got {type(arch).__name__}")
        if len(arch.stages) != len(self.stages):
            raise ValueError(f"seq: {len(arch.stages)} stages, the space has {len(self.stages)}")
        for i, (stage, spec) in enumerate(zip(arch.stages, self.stages, strict=True)):
            if not spec.min_blocks <= len(stage) <= spec.max_blocks:
                raise ValueError(
                    f"seq: s{i}.depth={len(stage)} is not in "
                    f"{list(range(spec.min_blocks, spec.max_blocks + 1))}"
                )
            choices = self._field_choices(i)
            for j, block in enumerate(stage):
                if block.kind not in self.kinds:
                    raise ValueError(f"seq: s{i}.b{j}.kind={block.kind!r} is not one of "
                                     f"{list(self.kinds)}")  # fmt: skip
                used = (*COMMON_FIELDS, *KIND_FIELDS[block.kind])
                for field in used:
                    value = getattr(block, field)
                    if value not in choices[field] or type(value) is not type(choices[field][0]):
                        raise ValueError(
                            f"seq: s{i}.b{j}.{field}={value!r} is not one of {list(choices[field])}"
                        )
                other = [f for fs in KIND_FIELDS.values() for f in fs if f not in used]
                if any(getattr(block, f) != 0 for f in other):
                    raise ValueError(
                        f"seq: s{i}.b{j} is a {block.kind} block; its {', '.join(other)} must be 0"
                    )
        if arch.dropout not in self.dropout:
            raise ValueError(
                f"seq: head.dropout={arch.dropout!r} is not one of {list(self.dropout)}"
            )
        return arch

    validate = validate_arch

    # -- strings -----------------------------------------------------------------------------
    def to_str(self, arch: SeqArch) -> str:
        """E.g. `[conv-w32-k5-d1-batchnorm-post] [attn-w64-h4-m2-layernorm-pre,
        conv-w64-k3-d2-rmsnorm-post_act] dropout=0.2`."""
        self.validate_arch(arch)
        stages = " ".join("[" + ", ".join(_block_str(b) for b in s) + "]" for s in arch.stages)
        return f"{stages} dropout={arch.dropout!r}"

    def from_str(self, text: str) -> SeqArch:
        return self.validate_arch(parse_seq_arch(text))

    # -- sampling and moves ------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> SeqArch:
        return self.from_params({n: pick(rng, v) for n, v in self._choices().items()})

    def _moves(self, arch: SeqArch, name: str) -> list[SeqArch]:
        """The archs that change only parameter `name` and compute something else."""
        params = self.full_params(arch)
        if not self._active(name, params):
            return []
        seen = {self.canonical(arch)}
        moves = []
        for value in self._choices()[name]:
            if value == params[name] and type(value) is type(params[name]):
                continue
            other = self.canonical(self.from_params({**params, name: value}))
            if other not in seen:
                seen.add(other)
                moves.append(other)
        return moves

    def mutate(self, arch: SeqArch, rng: np.random.Generator) -> SeqArch:
        """Change one active choice (a uniformly drawn parameter, then a new value); changes
        that `canonical` undoes are never drawn, so the child computes something else."""
        names = list(self._choices())
        for k in rng.permutation(len(names)):
            moves = self._moves(arch, names[int(k)])
            if moves:
                return pick(rng, moves)
        raise ValueError("seq: every parameter has a single choice; nothing to mutate")

    def neighbors(self, arch: SeqArch) -> list[SeqArch]:
        """Every arch one active choice away, no duplicates."""
        out: list[SeqArch] = []
        for name in self._choices():
            out.extend(a for a in self._moves(arch, name) if a not in out)
        return out

    def canonical(self, arch: SeqArch) -> SeqArch:
        """One encoding per function: a block without a norm computes the same for every
        placement (conv -> act with the residual; x + f(x) for a transformer block), so it
        takes the space's first placement."""
        self.validate_arch(arch)
        first = self.placements[0]

        def canon(b: SeqBlock) -> SeqBlock:
            return replace(b, placement=first) if b.norm == "none" else b

        return SeqArch(tuple(tuple(canon(b) for b in s) for s in arch.stages), arch.dropout)

    def size(self) -> int:
        """Distinct architectures under `canonical`, counted from the choice lists."""
        has_none = int("none" in self.norms)
        norm_placements = (len(self.norms) - has_none) * len(self.placements) + has_none
        per_kind = {
            "conv": len(self.kernels) * len(self.dilations),
            "attn": len(self.heads) * len(self.mlp_ratios),
        }
        total = len(self.dropout)
        for spec in self.stages:
            block = len(spec.widths) * norm_placements * sum(per_kind[k] for k in self.kinds)
            total *= sum(block**d for d in range(spec.min_blocks, spec.max_blocks + 1))
        return total

    # -- the network -------------------------------------------------------------------------
    def build(self, arch: SeqArch, num_classes: int = 2, in_channels: int = 1) -> nn.Module:
        self.validate_arch(arch)
        pools = [s.pool for s in self.stages]
        return SeqNetwork(arch, pools, self.stem_width, self.stem_kernel, num_classes, in_channels)


def parse_seq_arch(text: str) -> SeqArch:
    """A SeqArch from its `to_str` form, not yet checked against any space."""
    body, sep, dropout = text.strip().rpartition(" dropout=")
    stages = _STAGE_RE.findall(body)
    if not sep or _STAGE_RE.sub("", body).strip() or not stages or not all(stages):
        raise ValueError(f"seq: {text!r} is not of the form '[block, ...] [...] dropout=P'")
    try:
        return SeqArch(
            tuple(tuple(parse_seq_block(b) for b in s.split(",")) for s in stages),
            float(dropout),
        )
    except ValueError as err:
        raise ValueError(f"seq: cannot read {text!r}: {err}") from None


def _block_str(b: SeqBlock) -> str:
    if b.kind == "conv":
        return f"conv-w{b.width}-k{b.kernel}-d{b.dilation}-{b.norm}-{b.placement}"
    return f"attn-w{b.width}-h{b.heads}-m{b.mlp_ratio}-{b.norm}-{b.placement}"


def parse_seq_block(text: str) -> SeqBlock:
    """A block from its `to_str` form: conv-wW-kK-dD-NORM-PLACEMENT or attn-wW-hH-mM-..."""
    text = text.strip()
    conv, attn = _CONV_RE.fullmatch(text), _ATTN_RE.fullmatch(text)
    if conv is not None:
        w, k, d, norm, placement = conv.groups()
        return SeqBlock("conv", int(w), norm, placement, kernel=int(k), dilation=int(d))
    if attn is not None:
        w, h, m, norm, placement = attn.groups()
        return SeqBlock("attn", int(w), norm, placement, heads=int(h), mlp_ratio=int(m))
    raise ValueError(
        f"block {text!r} is not 'conv-wW-kK-dD-norm-placement' or 'attn-wW-hH-mM-norm-placement'"
    )


# -- config validation: one-line errors naming the field and what it allows -----------------
def _nonempty(field: str, values: Any) -> Sequence[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"seq: {field} must be a non-empty list, got {values!r}")
    return values


def _ints(field: str, values: Any, odd: bool = False) -> list[int]:
    out = []
    for v in _nonempty(field, values):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1 or (odd and v % 2 == 0):
            kind = "odd positive integers (e.g. 3, 5)" if odd else "positive integers"
            raise ValueError(f"seq: {field} must be {kind}, got {v!r}")
        out.append(v)
    return out


def _norm(name: Any) -> str:
    if isinstance(name, str):
        try:
            return canonical_norm_name(name)
        except ValueError:
            pass
    raise ValueError(f"seq: norms: unknown norm {name!r}; allowed: {list(ALL_NORM_NAMES)}")


def _member(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"seq: {field}: {value!r} is not one of {list(allowed)}")
    return value


def _prob(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"seq: dropout: {value!r} must be a probability in [0, 1)")
    return float(value)


def _stage(i: int, spec: SeqStageSpec | Mapping[str, Any]) -> SeqStageSpec:
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in _STAGE_KEYS]
        if unknown:
            raise ValueError(
                f"seq: stages[{i}]: unknown key {unknown[0]!r}; allowed keys: {list(_STAGE_KEYS)}"
            )
        if "widths" not in spec:
            raise ValueError(f"seq: stages[{i}].widths is required (a list of channel counts)")
        spec = SeqStageSpec(
            **{**spec, "widths": tuple(_ints(f"stages[{i}].widths", spec["widths"]))}
        )
    elif not isinstance(spec, SeqStageSpec):
        raise ValueError(f"seq: stages[{i}] must be a SeqStageSpec or a mapping, got {spec!r}")
    widths = tuple(_ints(f"stages[{i}].widths", spec.widths))
    if len(set(widths)) != len(widths):
        raise ValueError(f"seq: stages[{i}].widths has a repeated value: {list(widths)}")
    for key in ("min_blocks", "max_blocks", "pool"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"seq: stages[{i}].{key} must be an integer >= 1, got {value!r}")
    if spec.min_blocks > spec.max_blocks:
        raise ValueError(
            f"seq: stages[{i}].min_blocks={spec.min_blocks} exceeds max_blocks={spec.max_blocks}"
        )
    return SeqStageSpec(widths, spec.min_blocks, spec.max_blocks, spec.pool)
