"""RecipeSpace: the training recipe (lr, schedule, optimizer, BN momentum, ...) as a space."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from normnas.spaces._choices import check_params, pick

SCHEDULES: tuple[str, ...] = (
    "constant", "step", "multistep", "cosine", "warmup_cosine", "onecycle", "linear",
)  # fmt: skip
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")  # sgd: SGD with Nesterov momentum


@dataclass(frozen=True)
class Recipe:
    """How to train a network. `optimizer='sgd'` means SGD with Nesterov momentum."""

    lr: float
    schedule: str
    optimizer: str
    weight_decay: float
    wd_on_norm_and_bias: bool
    bn_momentum: float
    batch_size: int
    label_smoothing: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Recipe))
_CONTINUOUS = ("lr", "weight_decay")
_KEYS = (
    "lr", "weight_decay", "schedules", "optimizers", "wd_on_norm_and_bias", "bn_momentum",
    "batch_size", "label_smoothing", "step_factor",
)  # fmt: skip


class RecipeSpace:
    """Training recipes: `lr` and `weight_decay` are log-uniform ranges, the rest categorical.

    Optuna parameters are the `Recipe` field names. Moves: a categorical field takes any
    other value; a continuous field is multiplied or divided by `step_factor` (default 2),
    clipped to its range, so mutation is a local step on the log scale.
    """

    name = "recipe"

    def __init__(
        self,
        lr: tuple[float, float] = (1e-3, 0.5),
        weight_decay: tuple[float, float] = (1e-6, 1e-2),
        schedules: Sequence[str] = SCHEDULES,
        optimizers: Sequence[str] = OPTIMIZERS,
        wd_on_norm_and_bias: Sequence[bool] = (False, True),
        bn_momentum: Sequence[float] = (0.01, 0.03, 0.1, 0.3),
        batch_size: Sequence[int] = (32, 64, 128, 256),
        label_smoothing: Sequence[float] = (0.0, 0.05, 0.1),
        step_factor: float = 2.0,
    ) -> None:
        self.ranges = {"lr": _range("lr", lr), "weight_decay": _range("weight_decay", weight_decay)}
        self.choices: dict[str, tuple[Any, ...]] = {
            "schedule": _members("schedules", schedules, SCHEDULES),
            "optimizer": _members("optimizers", optimizers, OPTIMIZERS),
            "wd_on_norm_and_bias": _typed("wd_on_norm_and_bias", wd_on_norm_and_bias, bool),
            "bn_momentum": _numbers("bn_momentum", bn_momentum, 0.0, 1.0),
            "batch_size": _typed("batch_size", batch_size, int),
            "label_smoothing": _numbers("label_smoothing", label_smoothing, 0.0, 1.0, low_ok=True),
        }
        if any(b < 1 for b in self.choices["batch_size"]):
            raise ValueError(f"recipe: batch_size must be integers >= 1, got {list(batch_size)}")
        if (
            isinstance(step_factor, bool)
            or not isinstance(step_factor, (int, float))
            or step_factor <= 1
        ):
            raise ValueError(f"recipe: step_factor must be a number > 1, got {step_factor!r}")
        self.step_factor = float(step_factor)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> RecipeSpace:
        unknown = [k for k in config if k not in _KEYS]
        if unknown:
            raise ValueError(f"recipe: unknown key {unknown[0]!r}; allowed keys: {list(_KEYS)}")
        return cls(**dict(config))

    # -- parameters --------------------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {}
        for name in FIELDS:
            if name in self.ranges:
                low, high = self.ranges[name]
                out[name] = FloatDistribution(low, high, log=True)
            else:
                out[name] = CategoricalDistribution(self.choices[name])
        return out

    def suggest(self, trial: optuna.Trial) -> Recipe:
        params: dict[str, Any] = {}
        for name in FIELDS:
            if name in self.ranges:
                params[name] = trial.suggest_float(name, *self.ranges[name], log=True)
            else:
                params[name] = trial.suggest_categorical(name, self.choices[name])
        return self.from_params(params)

    def from_params(self, params: Mapping[str, Any]) -> Recipe:
        categorical = {k: v for k, v in params.items() if k not in self.ranges}
        check_params(self.name, categorical, self.choices)
        for name in _CONTINUOUS:
            if name not in params:
                raise ValueError(f"recipe: missing parameter {name!r}; expected {list(FIELDS)}")
            self._check_range(name, params[name])
        return Recipe(**{name: params[name] for name in FIELDS})

    def to_params(self, arch: Recipe) -> dict[str, Any]:
        return self.validate(arch).as_dict()

    def validate(self, arch: Recipe) -> Recipe:
        if not isinstance(arch, Recipe):
            raise ValueError(f"recipe: expected a Recipe, got {type(arch).__name__}")
        self.from_params(arch.as_dict())
        return arch

    def _check_range(self, name: str, value: Any) -> None:
        low, high = self.ranges[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not low <= value <= high
        ):
            raise ValueError(f"recipe: {name}={value!r} is not in [{low}, {high}]")

    # -- strings -----------------------------------------------------------------------------
    def to_str(self, arch: Recipe) -> str:
        """E.g. `lr=0.1 schedule=cosine optimizer=sgd weight_decay=0.0005 ...` (round-trips)."""
        params = self.to_params(arch).items()
        return " ".join(f"{k}={v}" if isinstance(v, str) else f"{k}={v!r}" for k, v in params)

    def from_str(self, text: str) -> Recipe:
        params: dict[str, Any] = {}
        for token in text.split():
            key, sep, value = token.partition("=")
            if not sep or key not in FIELDS:
                raise ValueError(
                    f"recipe: cannot read {token!r}; expected key=value with keys {list(FIELDS)}"
                )
            params[key] = _parse(key, value)
        return self.from_params(params)

    # -- sampling and moves ------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Recipe:
        params: dict[str, Any] = {}
        for name in FIELDS:
            if name in self.ranges:
                low, high = self.ranges[name]
                params[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
            else:
                params[name] = pick(rng, self.choices[name])
        return self.from_params(params)

    def _moves(self, arch: Recipe, name: str) -> list[Recipe]:
        current = getattr(arch, name)
        if name in self.ranges:
            low, high = self.ranges[name]
            values = [min(high, current * self.step_factor), max(low, current / self.step_factor)]
        else:
            values = list(self.choices[name])
        out: list[Recipe] = []
        for value in values:
            if value == current and type(value) is type(current):
                continue
            other = dataclasses.replace(arch, **{name: value})
            if other not in out:
                out.append(other)
        return out

    def mutate(self, arch: Recipe, rng: np.random.Generator) -> Recipe:
        """One field changes: a uniformly drawn field, then one of its moves (see class doc)."""
        self.validate(arch)
        for k in rng.permutation(len(FIELDS)):
            moves = self._moves(arch, FIELDS[int(k)])
            if moves:
                return pick(rng, moves)
        raise ValueError("recipe: every field has a single value; nothing to mutate")

    def neighbors(self, arch: Recipe) -> list[Recipe]:
        """Every other value of each categorical field; x/÷ step_factor for lr and weight_decay."""
        self.validate(arch)
        return [r for name in FIELDS for r in self._moves(arch, name)]

    def canonical(self, arch: Recipe) -> Recipe:
        """Recipes have no equivalent encodings: the recipe itself."""
        return self.validate(arch)

    def build(self, arch: Recipe, num_classes: int = 10, in_channels: int = 3) -> Any:
        raise TypeError(
            "RecipeSpace.build: a training recipe is not a network; build the architecture "
            "from an architecture space (JointSpace.build builds the arch part of a pair)"
        )


def _parse(key: str, value: str) -> Any:
    if key in ("schedule", "optimizer"):
        return value
    if key == "wd_on_norm_and_bias":
        if value not in ("True", "False"):
            raise ValueError(f"recipe: wd_on_norm_and_bias={value!r} is not one of [False, True]")
        return value == "True"
    try:
        return int(value) if key == "batch_size" else float(value)
    except ValueError:
        raise ValueError(f"recipe: {key}={value!r} is not a number") from None


def _range(field: str, value: Any) -> tuple[float, float]:
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not 0 < value[0] <= value[1]:
        raise ValueError(f"recipe: {field} must be [low, high] with 0 < low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def _nonempty(field: str, values: Any) -> Sequence[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"recipe: {field} must be a non-empty list, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"recipe: {field} has a repeated value: {list(values)}")
    return values


def _members(field: str, values: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    for v in _nonempty(field, values):
        if v not in allowed:
            raise ValueError(f"recipe: {field}: {v!r} is not one of {list(allowed)}")
    return tuple(values)


def _typed(field: str, values: Any, kind: type) -> tuple[Any, ...]:
    for v in _nonempty(field, values):
        if type(v) is not kind:
            raise ValueError(f"recipe: {field}: {v!r} is not a {kind.__name__}")
    return tuple(values)


def _numbers(
    field: str, values: Any, low: float, high: float, low_ok: bool = False
) -> tuple[float, ...]:
    for v in _nonempty(field, values):
        inside = (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and ((low <= v if low_ok else low < v) and v < high)
        )
        if not inside:
            bounds = f"{'[' if low_ok else '('}{low}, {high})"
            raise ValueError(f"recipe: {field}: {v!r} is not a number in {bounds}")
    return tuple(float(v) for v in values)
