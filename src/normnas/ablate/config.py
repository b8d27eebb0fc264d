"""The configuration of `normnas ablate`: a YAML file and flags, validated into one model.

YAML keys (all optional) are the flags' names: `data`, `data_root`, `space` (macro or seq),
`arch`, `factors` (a
list of names, or a mapping name → levels, null for the default levels), `levels`
(name → levels), `baseline` (name → level), `seeds`, `epochs`, `time`, `workers`,
`executor`, `ray` (`address`, `trials_in_parallel`, `cpus_per_trial`, `gpus_per_trial`),
`design`, `study`, `storage`, `device`, `report`, and `train` (TrainConfig
fields of the base recipe, e.g. `{lr: 0.1, optimizer: sgd}`). Flags override the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from normnas.ablate.design import DESIGN_KINDS
from normnas.ablate.factors import Factor, parse_factors
from normnas.config import RayOptions, executor_conflict, merge
from normnas.errors import ConfigError

DEFAULT_FACTORS = ("norm", "batch_size")
SEQ_EPOCHS = 100  # UCR-sized data: 100 epochs are a few hundred steps
# the base recipe: what every cell trains with unless one of its factors sets it
BASE_TRAIN: dict[str, Any] = {
    "batch_size": 32, "lr": 0.05, "weight_decay": 5e-4, "schedule": "cosine",
    "optimizer": "sgd",
}  # fmt: skip


class AblateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str = "digits"
    data_root: str | None = None
    space: Literal["macro", "seq"] = "macro"  # the network space whose blocks are varied
    arch: str | None = None  # default: macro-default or seq-default, after `space`
    factors: list[str] | dict[str, list[Any] | None] = Field(
        default_factory=lambda: list(DEFAULT_FACTORS)
    )
    levels: dict[str, list[Any]] = Field(default_factory=dict)
    baseline: dict[str, Any] = Field(default_factory=dict)
    seeds: int = Field(3, ge=1, le=100)
    epochs: int = Field(5, ge=1)  # seq: SEQ_EPOCHS unless given
    time: float | None = None
    workers: int = Field(1, ge=1)
    executor: Literal["local", "ray"] = "local"
    ray: RayOptions = Field(default_factory=RayOptions)
    design: Literal[DESIGN_KINDS] = "auto"  # type: ignore[valid-type]
    study: str | None = None
    storage: str | None = None
    device: str = "cpu"
    report: str | None = None
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        from normnas.config import parse_duration

        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _sequence_epochs(self) -> AblateConfig:
        if self.space == "seq" and "epochs" not in self.model_fields_set:
            object.__setattr__(self, "epochs", SEQ_EPOCHS)
        return self

    @model_validator(mode="after")
    def _executor(self) -> AblateConfig:
        conflict = executor_conflict(self.executor, self.ray, self.workers, "runs")
        if conflict:
            raise ValueError(conflict)
        return self

    def factor_list(self) -> tuple[Factor, ...]:
        """The chosen factors with their levels and baselines (ConfigError when bad)."""
        if isinstance(self.factors, dict):
            names = list(self.factors)
            levels = {k: v for k, v in self.factors.items() if v is not None}
        else:
            names = [n.strip() for n in self.factors if n.strip()]
            levels = {}
        levels.update(self.levels)
        return parse_factors(names, levels, self.baseline, self.space)

    def arch_text(self) -> str:
        """`arch`, or the space's default architecture's name."""
        return self.arch if self.arch is not None else f"{self.space}-default"

    def base_train(self) -> dict[str, Any]:
        bad = [k for k in self.train if k in ("epochs", "seed", "device")]
        if bad:
            raise ConfigError(f"train.{bad[0]}: set it with --{bad[0]}, not in train")
        base = BASE_TRAIN
        if self.space == "seq":  # the seq search's own recipe (normnas.spaces.seq)
            from normnas.spaces.seq import SEQ_TRAIN_DEFAULTS

            base = {**BASE_TRAIN, **SEQ_TRAIN_DEFAULTS}
        return {**base, **self.train, "epochs": self.epochs, "device": self.device}


def load_ablate_config(path: Path | None, overrides: Mapping[str, Any]) -> AblateConfig:
    """The YAML file (safe_load, a repeated key refused) with the flags that were given on
    top (dotted keys, "ray.address", reach into the file's mappings)."""
    from normnas.yaml_io import load_yaml_file

    data: dict[str, Any] = {}
    source = None
    if path is not None:
        source = str(path)
        loaded = load_yaml_file(path, f"--config {path}")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"--config {path}: expected a mapping of keys, got a list or value")
        data = dict(loaded or {})
    data = merge(data, overrides)
    try:
        cfg = AblateConfig.model_validate(data)
    except ValidationError as exc:
        from normnas.config import format_error

        raise ConfigError(format_error(exc, AblateConfig, source=source)) from None
    cfg.factor_list()  # bad factors or levels fail here, before any data is loaded
    return cfg
