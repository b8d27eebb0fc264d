"""The factors an ablation varies, their levels, and what a level changes in a run.

A factor is either an architecture field of the network space, macro or seq (`norm`,
`placement`, applied to every block; the seq space has its own placements and defaults) or
a field of the training recipe (`batch_size`, `schedule`, `regularizer`,
`lr`, `bn_momentum`). Each has default levels and a baseline level; the baseline cell is
every factor at its baseline, and the fixed training settings below make it the recipe a
search trains with.

Regularizer levels (each alone, so they can be compared with each other and with none):
- `none`: no weight decay, no dropout;
- `dropout`: dropout 0.2 before the classifier, no weight decay;
- `l2`: weight decay 5e-4 on conv/linear weights (norm scales and biases exempt);
- `l1`: an L1 penalty 1e-5·|w| on conv/linear weights (its subgradient added to theirs);
- `bn-only`: weight decay 5e-4 on the normalization layers' scale and shift only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from normnas.errors import ConfigError
from normnas.nn.norm import NORM_LABELS
from normnas.spaces._seq_model import SEQ_PLACEMENTS

FACTOR_NAMES: tuple[str, ...] = (
    "norm", "placement", "batch_size", "schedule", "regularizer", "lr", "bn_momentum",
)  # fmt: skip
ARCH_FACTORS = ("norm", "placement")
REGULARIZERS: tuple[str, ...] = ("none", "dropout", "l2", "l1", "bn-only")
SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine", "onecycle")
PLACEMENTS: tuple[str, ...] = ("conv_norm_act", "conv_act_norm", "norm_act_conv")
WEIGHT_DECAY = 5e-4  # the `l2` and `bn-only` strength, and the base recipe's
L1_STRENGTH = 1e-5
DROPOUT = 0.2

# (default levels, baseline); norm levels are stored by their full make_norm names
DEFAULTS: dict[str, tuple[tuple[Any, ...], Any]] = {
    "norm": (("batchnorm", "groupnorm", "instancenorm", "layernorm", "none"), "batchnorm"),
    "placement": (PLACEMENTS, "conv_norm_act"),
    "batch_size": ((8, 32, 128), 32),
    "schedule": (SCHEDULES, "cosine"),
    "regularizer": (REGULARIZERS, "l2"),
    # a log-spaced range sweep around the base lr: the largest stable lr is an answer too
    "lr": ((0.0125, 0.05, 0.2, 0.8, 3.2), 0.05),
    "bn_momentum": ((0.01, 0.1, 0.5), 0.1),
}

ABLATE_SPACES: tuple[str, ...] = ("macro", "seq")
PLACEMENTS_BY_SPACE: dict[str, tuple[str, ...]] = {"macro": PLACEMENTS, "seq": SEQ_PLACEMENTS}
# where a space's defaults differ: on sequences LayerNorm and pre-norm are the habit, so they
# are the baseline every other level is compared with
SPACE_DEFAULTS: dict[str, dict[str, tuple[tuple[Any, ...], Any]]] = {
    "seq": {
        "norm": (("batchnorm", "layernorm", "rmsnorm", "groupnorm", "none"), "layernorm"),
        "placement": (("post", "pre"), "pre"),
    },
}

FACTOR_LABELS = {
    "norm": "norm",
    "placement": "placement",
    "batch_size": "batch size",
    "schedule": "schedule",
    "regularizer": "regularizer",
    "lr": "lr",
    "bn_momentum": "BN momentum",
}


@dataclass(frozen=True)
class Factor:
    """One factor: its name, its levels (in the order given) and its baseline level."""

    name: str
    levels: tuple[Any, ...]
    baseline: Any

    def label(self, level: Any) -> str:
        """How a level reads in a sentence: 'GroupNorm', 'batch size 8', 'lr 0.2'."""
        if self.name == "norm":
            return NORM_LABELS.get(level, str(level))
        if self.name == "schedule":
            return f"{level} schedule"
        if self.name == "placement":
            return str(level)
        if self.name == "regularizer":
            return {"none": "no regularizer", "bn-only": "norm-only weight decay"}.get(
                level, str(level)
            )
        return f"{FACTOR_LABELS[self.name]} {level:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "levels": list(self.levels), "baseline": self.baseline}


def parse_level(factor: str, value: Any, space: str | None = None) -> Any:
    """A level of `factor` from YAML or the command line; ConfigError naming what is wrong.
    A placement must be one of `space`'s (None: of any ablatable space)."""
    where = f"factor {factor}"
    text = str(value).strip()
    if factor == "norm":
        from normnas.nn.norm import canonical_norm_name

        try:
            return canonical_norm_name(text)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    if factor in ("placement", "schedule", "regularizer"):
        placements = (
            PLACEMENTS_BY_SPACE[space] if space in PLACEMENTS_BY_SPACE
            else tuple(dict.fromkeys(p for ps in PLACEMENTS_BY_SPACE.values() for p in ps))
        )  # fmt: skip
        allowed = {"placement": placements, "schedule": _schedule_names(),
                   "regularizer": REGULARIZERS}[factor]  # fmt: skip
        if text not in allowed:
            raise ConfigError(f"{where}: level {text!r} is not one of {', '.join(allowed)}")
        return text
    if factor == "batch_size":
        try:
            size = int(text)
        except ValueError:
            size = 0
        if size < 2 or str(size) != text:
            raise ConfigError(f"{where}: level {text!r} is not an integer >= 2")
        return size
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if factor == "lr" and not number > 0:
        raise ConfigError(f"{where}: level {text!r} is not a number > 0")
    if factor == "bn_momentum" and not 0 < number <= 1:
        raise ConfigError(f"{where}: level {text!r} is not a number in (0, 1]")
    return number


def _schedule_names() -> tuple[str, ...]:
    from normnas.train.schedules import SCHEDULE_NAMES

    return SCHEDULE_NAMES


def make_factor(
    name: str, levels: Sequence[Any] | None = None, baseline: Any = None, space: str | None = None
) -> Factor:
    """Factor `name` with `levels` (default: `space`'s, else DEFAULTS) and `baseline`
    (default: the default baseline when it is among the levels, else the first level)."""
    if name not in FACTOR_NAMES:
        raise ConfigError(f"unknown factor {name!r}; valid: {', '.join(FACTOR_NAMES)}")
    default_levels, default_base = SPACE_DEFAULTS.get(space or "", {}).get(name, DEFAULTS[name])
    values = tuple(
        parse_level(name, v, space) for v in (default_levels if levels is None else levels)
    )
    if not values:
        raise ConfigError(f"factor {name}: needs at least one level")
    if len(set(values)) != len(values):
        raise ConfigError(f"factor {name}: a level is repeated in {list(values)}")
    if baseline is None:
        base = default_base if default_base in values else values[0]
    else:
        base = parse_level(name, baseline, space)
        if base not in values:
            raise ConfigError(f"factor {name}: baseline {baseline!r} is not one of its levels")
    return Factor(name, values, base)


def parse_factors(
    names: Sequence[str],
    levels: Mapping[str, Sequence[Any]] | None = None,
    baselines: Mapping[str, Any] | None = None,
    space: str | None = None,
) -> tuple[Factor, ...]:
    """The factors `names` in that order, with optional levels and baselines per factor, for
    network space `space` (macro or seq; None: macro's defaults, any space's placements)."""
    levels = dict(levels or {})
    baselines = dict(baselines or {})
    if not names:
        raise ConfigError(f"--factors: name at least one factor of {', '.join(FACTOR_NAMES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--factors: a factor is repeated in {list(names)}")
    for source, keys in (("levels", levels), ("baseline", baselines)):
        stray = [k for k in keys if k not in names]
        if stray:
            raise ConfigError(f"{source}: {stray[0]!r} is not one of the chosen factors {names}")
    return tuple(make_factor(n, levels.get(n), baselines.get(n), space) for n in names)


def parse_levels_option(items: Sequence[str]) -> dict[str, list[str]]:
    """`--levels norm=bn,gn --levels batch_size=8,128` as {factor: [levels]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        parts = [v for v in (p.strip() for p in values.split(",")) if v]
        if not sep or not name or not parts:
            raise ConfigError(f"--levels {item!r}: expected FACTOR=LEVEL,LEVEL,...")
        out[name] = parts
    return out
