"""The configuration of a search run: pydantic models, YAML loading, one-line errors.

A run is described by `RunConfig` (YAML file and/or CLI flags; flags override the file).
Every model forbids unknown keys. `load_config` / `parse_config` raise `ConfigError`
whose message is ONE line naming the field and the allowed values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from normnas.search.records import OBJECTIVES
from normnas.search.spaces import SPACE_NAMES
from normnas.yaml_io import load_yaml_file


def _objective(value: str) -> str:
    from normnas.search.records import normalize_objective

    return normalize_objective(value)  # ValueError: "must be one of 'accuracy', ..."


# a built-in objective, or NAME:maximize|minimize for a metric of a custom evaluate function
Objective = Annotated[str, AfterValidator(_objective)]
PRUNER_NAMES = ("none", "sha", "hyperband")
DEFAULT_TRIALS = 20  # when neither trials nor time is given


from normnas.errors import ConfigError  # noqa: E402  (re-exported: the config's error type)


def parse_duration(value: Any) -> float:
    """Seconds from 90, 90.5, "90", "90s", "10m", "1h" (or "1h30m")."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or like 90s, 10m, 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        parts = re.fullmatch(
            r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text
        )
        if not text or parts is None or not any(parts.groups()):
            raise ValueError(f"{value!r} is not a duration like 90, 90s, 10m, 1h")
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + s
    if seconds <= 0:
        raise ValueError(f"a duration must be > 0 seconds, got {value!r}")
    return seconds


def _norm_names() -> tuple[str, ...]:
    from normnas.nn.norm import ALIASES, ALL_NORM_NAMES

    return (*ALL_NORM_NAMES, *ALIASES)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SpaceConfig(_Model):
    """Which space: `macro`, `nb201` or `layers`; options go to the space (e.g. MacroSpace
    stages, a LayerSpace's input_size and layers). A name ending in .yaml/.yml is a
    LayerSpace file: its content becomes the options of `layers` (so the study records the
    layers themselves, not a path)."""

    name: Literal["macro", "nb201", "layers", "seq"] = "macro"
    norms: list[str] | None = None  # shortcut for options.norms (macro)
    options: dict[str, Any] = Field(default_factory=dict)
    recipe: dict[str, Any] | None = None  # search the training recipe too (RecipeSpace options)

    @model_validator(mode="before")
    @classmethod
    def _layer_file(cls, value: Any) -> Any:
        name = value.get("name") if isinstance(value, dict) else None
        if isinstance(name, str) and name.lower().endswith((".yaml", ".yml")):
            from normnas.spaces import LayerSpace

            space = LayerSpace.from_yaml(name)  # ValueError: the file and the bad field
            return {**value, "name": "layers", "options": space.to_dict()}
        return value

    @model_validator(mode="after")
    def _layers_checked(self) -> SpaceConfig:
        if self.name == "layers":
            from normnas.spaces import LayerSpace

            LayerSpace.from_dict(self.options)  # one line naming the layer index and field
        return self

    @field_validator("norms")
    @classmethod
    def _known_norms(cls, norms: list[str] | None) -> list[str] | None:
        if norms is not None:
            valid = _norm_names()
            for n in norms:
                if n.lower() not in valid:
                    raise ValueError(f"unknown norm {n!r}; valid: {', '.join(valid)}")
            if not norms:
                raise ValueError("norms must list at least one norm")
        return norms

    def space_options(self) -> dict[str, Any]:
        options = dict(self.options)
        if self.norms is not None:
            options["norms"] = list(self.norms)
        return options


class TrainOptions(_Model):
    """How each candidate is trained (normnas.train.TrainConfig fields)."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    wd_on_norm_and_bias: bool = False
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    schedule: str = "cosine"
    warmup_epochs: float = Field(0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    max_time_s: float | None = Field(None, gt=0)
    amp: bool = True
    bn_momentum: float | None = Field(None, gt=0, le=1)

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, name: str) -> str:
        from normnas.train import SCHEDULE_NAMES

        if name.lower() not in SCHEDULE_NAMES:
            raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULE_NAMES)}")
        return name.lower()


class OneshotOptions(_Model):
    """How a weight-sharing judge is trained and queried (`evaluator: supernet|bn-indicator`)."""

    bn_mode: Literal["running", "batch", "recalibrate"] = "recalibrate"
    calib_batches: int = Field(16, ge=1)  # recalibrate: training batches of 128 per query
    sampling: Literal["uniform", "fair", "sandwich"] = "uniform"  # SPOS, FairNAS, sandwich
    affine: bool = True  # BN affine parameters in the supernet's searched ops
    C: int = Field(16, ge=1)  # NB201 supernet: channels of the first stage
    N: int = Field(5, ge=1)  # NB201 supernet: cells per stage
    epochs: int | None = Field(None, ge=1)  # supernet training epochs (default train.epochs)
    warmup_epochs: int = Field(2, ge=0)  # bn-indicator: all weights first
    bn_epochs: int = Field(5, ge=1)  # bn-indicator: then BN affine only
    # few-shot NAS: split the NB201 supernet on this edge (0-5 or "3<-0") into 5 sub-supernets
    few_shot: int | str | None = None
    few_shot_fraction: float = Field(0.5, gt=0, lt=1)  # of the epochs, spent on the 5 subs

    @field_validator("few_shot")
    @classmethod
    def _few_shot_edge(cls, value: Any) -> int | None:
        from normnas.oneshot.few_shot import parse_edge

        return None if value is None else parse_edge(value)


class GradientConfig(_Model):
    """A gradient-based search (`method: darts|gdas|drnas`): its relaxed supernet and training.

    Defaults are the published DARTS/NB201 settings (network SGD 0.025 cosine to 0.001,
    architecture Adam 3e-4 with betas (0.5, 0.999) and weight decay 1e-3, searched cells'
    BN without affine parameters and without running statistics).
    """

    order: Literal[1, 2] = 1  # darts: first order, or the unrolled second-order gradient
    epochs: int | None = Field(None, ge=1)  # search epochs (default train.epochs)
    batch_size: int = Field(64, ge=2)
    w_lr: float = Field(0.025, gt=0)
    arch_lr: float = Field(3e-4, gt=0)
    selection: Literal["argmax", "pt"] = "argmax"  # pt: DARTS-PT perturbation selection
    exclude_none: bool | None = None  # None: the method's published default
    pt_tune_epochs: int = Field(1, ge=0)
    affine: bool = False  # BN gamma/beta in the searched cells
    track_running_stats: bool = False  # BN running statistics in the searched cells
    tau_max: float = Field(10.0, gt=0)  # gdas temperature, linear from tau_max to tau_min
    tau_min: float = Field(0.1, gt=0)
    drnas_reg: float = Field(1e-3, ge=0)
    C: int = Field(16, ge=1)  # NB201: channels of the first stage of the search network
    N: int = Field(5, ge=1)  # NB201: cells per stage of the search network


class ConstraintsConfig(_Model):
    max_params: float | None = Field(None, gt=0)
    max_flops: float | None = Field(None, gt=0)
    max_latency_ms: float | None = Field(None, gt=0)


class LatencyOptions(_Model):
    """`--target`: latency predicted for this runtime from a table (normnas.latency), not
    timed per trial; the finalists are measured for real on it."""

    target: Literal["torch", "torchscript", "onnxruntime", "cuda"] | None = None
    threads: int = Field(1, ge=1)
    batch: int = Field(1, ge=1)
    table: str | None = None  # default: the cache, profiled on first use


class RayOptions(_Model):
    """`executor: ray`: which cluster, and what each parallel trial gets of it."""

    # None: $RAY_ADDRESS, else a new local cluster; "auto": the running one; "ray://host:port"
    address: str | None = None
    trials_in_parallel: int | None = Field(None, ge=1)  # None: what the cluster's CPUs/GPUs fit
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)


def executor_conflict(
    executor: str, ray: RayOptions, workers: int, units: str = "trials"
) -> str | None:
    """What is wrong with these executor settings (Ray flags without Ray, or --workers with
    it), for a search's config and an ablation's alike; None when nothing."""
    if executor == "local" and ray != RayOptions():
        return (
            "--ray-address, --trials-in-parallel, --cpus-per-trial and --gpus-per-trial "
            "need --executor ray"
        )
    if executor == "ray" and workers > 1:
        return f"--executor ray: --trials-in-parallel sets the parallel {units}, not --workers"
    return None


def _one_of(what: str, name: str, valid: Sequence[str]) -> str:
    """`name` if it is one of `valid`, else the one-line error naming them."""
    if name not in valid:
        raise ValueError(f"unknown {what} {name!r}; valid: {', '.join(valid)}")
    return name


# who may propose a cascade's first stage (see normnas.judges.proposers)
PROPOSERS = ("random", "evolution", "local")


class RunConfig(_Model):
    """One search run. Budget: `trials` and/or `time` (first reached stops the search)."""

    data: str = "digits"
    data_root: str | None = None  # downloads go here; default $NORMNAS_DATA, ~/.cache/normnas/data
    verify: bool = True  # refuse a data archive whose checksum is not the official one
    valid_fraction: float = Field(0.1, gt=0, lt=1)
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    strategy: str = "evolution"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    objectives: list[Objective] = Field(default_factory=lambda: ["accuracy"], min_length=1)
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)
    latency: LatencyOptions = Field(default_factory=LatencyOptions)
    trials: int | None = Field(None, ge=1)
    # evolution's budget words: generations x population_size trials (see _coherent)
    generations: int | None = Field(None, ge=1)
    time: float | None = None  # seconds; YAML/CLI accept 90, 90s, 10m, 1h
    pruner: Literal["none", "sha", "hyperband"] = "none"
    pruner_options: dict[str, Any] = Field(default_factory=dict)
    workers: int = Field(1, ge=1)
    # where the trials run: here (inline, or `workers` local processes) or on a Ray cluster
    executor: Literal["local", "ray"] = "local"
    ray: RayOptions = Field(default_factory=RayOptions)
    study: str | None = None
    storage: str | None = None
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: Literal["cpu", "cuda"] = "cpu"
    dedup: bool = True
    final: bool = True  # retrain the best on train+valid and score it on test
    train: TrainOptions = Field(default_factory=TrainOptions)
    evaluator: Literal["train", "supernet", "bn-indicator", "proxy"] = "train"
    oneshot: OneshotOptions = Field(default_factory=OneshotOptions)
    # gradient-based search instead of a strategy: trains a relaxed supernet, derives one arch
    method: Literal["darts", "gdas", "drnas"] | None = None
    gradient: GradientConfig = Field(default_factory=GradientConfig)
    # zero-cost proxies: the judge's (`evaluator: proxy`) and the warm-up's
    proxies: list[str] = Field(
        default_factory=lambda: ["synflow", "jacov", "naswot", "meco", "swap_reg"]
    )
    proxy_warmup: int = Field(0, ge=0)  # score N random archs first, start from the best
    # a cascade of judges, cheapest first: "proxy:2000,bn-indicator:200,train:20" (see
    # normnas.judges.cascade); its last stage is the search's judge
    cascade: str | None = None
    # who proposes the first stage's candidates: random, evolution or local (searching on
    # that stage's judge; see normnas.judges.proposers)
    proposer: str = "random"

    @field_validator("proposer")
    @classmethod
    def _known_proposer(cls, name: str) -> str:
        return _one_of("proposer", name, PROPOSERS)

    @field_validator("proxies", mode="before")
    @classmethod
    def _proxy_names(cls, value: Any) -> Any:
        from normnas.proxies.registry import parse_proxies

        return list(parse_proxies(value)) if isinstance(value, (str, list, tuple)) else value

    force: bool = False  # rerun a study although what defines its results changed

    @field_validator("space", mode="before")
    @classmethod
    def _space_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("objectives", mode="before")
    @classmethod
    def _one_objective(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        from normnas.search.strategies import STRATEGIES

        return _one_of("strategy", name, sorted(STRATEGIES))

    @field_validator("objectives")
    @classmethod
    def _distinct(cls, objs: list[str]) -> list[str]:
        if len({o.split(":")[0] for o in objs}) != len(objs):
            raise ValueError(f"objectives repeat a name: {', '.join(objs)}")
        return objs

    def _check_latency_target(self) -> None:
        if self.latency.target is None:
            return
        if "latency" not in self.objectives and self.constraints.max_latency_ms is None:
            raise ValueError(
                f"--target {self.latency.target}: it says where a latency is predicted; "
                "give --objective latency or --max-latency-ms with it"
            )
        if self.space.name not in ("nb201", "macro"):
            raise ValueError(
                f"--target: latency tables exist for nb201 and macro, not {self.space.name}"
            )

    @model_validator(mode="after")
    def _coherent(self) -> RunConfig:
        if self.generations is not None:
            self._generations_to_trials()
        if self.trials is None and self.time is None:
            object.__setattr__(self, "trials", DEFAULT_TRIALS)
        if self.pruner != "none" and len(self.objectives) > 1:
            raise ValueError("pruner: pruning needs a single objective")
        if self.method is not None:
            self._check_method()
        if self.space.name == "seq":
            self._sequence_defaults()
        self._check_executor()
        self._check_latency_target()
        from normnas.search.strategies import PRUNERS, STRATEGIES, check_options

        # option names are checked here, before any data is loaded or trial runs
        factory = STRATEGIES[self.strategy]
        check_options("strategy_options", "strategy", self.strategy, factory, self.strategy_options)
        check_options(
            "pruner_options", "pruner", self.pruner, PRUNERS[self.pruner], self.pruner_options
        )
        return self

    def _sequence_defaults(self) -> None:
        """The seq space's training recipe and valid share for every field left unset (the
        image defaults, 3 epochs of batch 128, are a handful of steps on UCR-sized data)."""
        from normnas.spaces.seq import SEQ_TRAIN_DEFAULTS, SEQ_VALID_FRACTION

        for name, value in SEQ_TRAIN_DEFAULTS.items():
            if name not in self.train.model_fields_set:
                object.__setattr__(self.train, name, value)
        if "valid_fraction" not in self.model_fields_set:
            object.__setattr__(self, "valid_fraction", SEQ_VALID_FRACTION)

    def _check_executor(self) -> None:
        conflict = executor_conflict(self.executor, self.ray, self.workers)
        if conflict:
            raise ValueError(conflict)
        if self.executor == "ray" and self.method is not None:
            raise ValueError(f"--method {self.method}: trains one supernet; it takes no --executor")

    def _generations_to_trials(self) -> None:
        """Regularized evolution's budget: the first generation is the random initial
        population (population_size trials), each later one population_size children."""
        if self.strategy != "evolution":
            raise ValueError(
                f"generations: only the evolution strategy has generations (got --strategy "
                f"{self.strategy}); use --trials"
            )
        population = self.strategy_options.get("population_size", _default_population())
        if isinstance(population, bool) or not isinstance(population, int) or population < 1:
            raise ValueError(f"population_size: must be an integer >= 1, got {population!r}")
        total = self.generations * population  # type: ignore[operator]
        if self.trials is not None and self.trials != total:
            raise ValueError(
                f"generations: {self.generations} x population_size {population} = {total} "
                f"trials, but trials is {self.trials}; give one budget, not both"
            )
        object.__setattr__(self, "trials", total)

    def _check_method(self) -> None:
        """A gradient method replaces the strategy, the judge and parallel workers."""
        if self.evaluator != "train":
            raise ValueError(
                f"--method {self.method}: derives the architecture from its own relaxed "
                f"supernet; it takes no --evaluator (got {self.evaluator!r})"
            )
        if self.workers > 1:
            raise ValueError(f"--method {self.method}: trains one supernet; it takes no --workers")
        if self.proxy_warmup:
            raise ValueError(f"--method {self.method}: takes no --proxy-warmup")
        if len(self.objectives) > 1 or self.objectives[0] != "accuracy":
            raise ValueError(f"--method {self.method}: maximizes accuracy only (--objective)")
        if self.gradient.order == 2 and self.method != "darts":
            raise ValueError(f"--order 2: is DARTS's unrolled gradient, not {self.method}'s")
        if self.gradient.tau_min > self.gradient.tau_max:
            raise ValueError("gradient.tau_min: must not exceed gradient.tau_max")

    @property
    def study_name(self) -> str:
        recipe = "+recipe" if self.space.recipe is not None else ""
        method = f"-{self.method}" if self.method else ""
        return self.study or f"normnas-{self.space.name}{recipe}-{Path(self.data).stem}{method}"


def _default_population() -> int:
    """The population_size evolution uses when none is given (its constructor's default)."""
    import inspect

    from normnas.search.samplers import EvolutionSampler

    return int(inspect.signature(EvolutionSampler).parameters["population_size"].default)


# -- loading and error messages -------------------------------------------------------------
def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "config"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


# the flag of each config key, so a message names what the user typed
FLAGS: dict[str, str] = {
    "data": "--data",
    "data_root": "--data-root",
    "verify": "--no-verify",
    "space": "--space",
    "space.name": "--space",
    "strategy": "--strategy",
    "objectives": "--objective",
    "constraints.max_params": "--max-params",
    "constraints.max_flops": "--max-flops",
    "constraints.max_latency_ms": "--max-latency-ms",
    "latency.target": "--target",
    "latency.threads": "--latency-threads",
    "latency.batch": "--latency-batch",
    "latency.table": "--latency-table",
    "trials": "--trials",
    "generations": "--generations",
    "strategy_options.population_size": "--population-size",
    "time": "--time",
    "train.epochs": "--epochs",
    "pruner": "--pruner",
    "workers": "--workers",
    "executor": "--executor",
    "ray.address": "--ray-address",
    "ray.trials_in_parallel": "--trials-in-parallel",
    "ray.cpus_per_trial": "--cpus-per-trial",
    "ray.gpus_per_trial": "--gpus-per-trial",
    "study": "--study",
    "storage": "--storage",
    "seed": "--seed",
    "device": "--device",
    "final": "--final",
    "force": "--force",
    "evaluator": "--evaluator",
    "oneshot.bn_mode": "--bn-mode",
    "oneshot.calib_batches": "--calib-batches",
    "oneshot.sampling": "--sampling",
    "oneshot.few_shot": "--few-shot",
    "proxies": "--proxy",
    "proxy_warmup": "--proxy-warmup",
    "cascade": "--cascade",
    "proposer": "--proposer",
    "method": "--method",
    "gradient.order": "--order",
    "gradient.selection": "--selection",
    "gradient.epochs": "--search-epochs",
}


def _field_name(loc: tuple[Any, ...], from_cli: set[str], source: str | None) -> str:
    """`--flag` when the user typed it; `--flag [key in file]` or `key in file` for YAML."""
    key = _loc(loc)
    flag = FLAGS.get(key) or FLAGS.get(_loc(loc[:-1])) if loc else None
    top = ".".join(str(p) for p in loc if not isinstance(p, int))
    typed = top in from_cli or key in from_cli or any(k.startswith(f"{key}.") for k in from_cli)
    if flag and typed:  # e.g. a whole-space error when --space (space.name) was typed
        return flag
    where = f" in {source}" if source else ""
    return f"{flag} [{key}{where}]" if flag else f"{key}{where}"


def format_error(
    exc: ValidationError,
    model: type[BaseModel] = RunConfig,
    from_cli: set[str] | None = None,
    source: str | None = None,
) -> str:
    """One line for the first error: the field (as flag or key), what is wrong, the allowed values.

    `from_cli` holds the dotted keys given as flags; `source` names the YAML file.
    """
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        where = f" in {source}" if source else ""
        return f"{_loc(loc)}{where}: unknown key; allowed keys: {', '.join(allowed)}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be one of")
    value = err.get("input")
    hidden = isinstance(value, (dict, list)) or value is None or repr(value) in msg
    shown = "" if hidden else f" (got {value!r})"
    if not loc:  # a check across fields: its message names them
        where = f" ({source})" if source else ""
        return f"{msg}{where}".replace("\n", " ")
    if from_cli is None and source is None:
        name = _loc(loc)
    else:
        name = _field_name(loc, from_cli or set(), source)
    return f"{name}: {msg}{shown}".replace("\n", " ")


def parse_config(
    data: Mapping[str, Any], from_cli: set[str] | None = None, source: str | None = None
) -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_error(exc, from_cli=from_cli, source=source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping of a run config file; ConfigError naming the file (and line) when it
    cannot be read, is not YAML, repeats a key, or is not a mapping."""
    p = Path(path)
    data = load_yaml_file(p, f"config {str(p)!r}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {str(p)!r}: the top level must be a mapping of keys")
    return data


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` laid over it; dotted keys ("train.epochs") reach nested ones."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            child = node.get(p)
            if isinstance(child, str) and p == "space":
                child = {"name": child}
            if not isinstance(child, dict):
                child = {}
            node[p] = child
            node = child
        node[leaf] = value
    return out


def _drop_foreign_options(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The YAML without the options it wrote for a strategy/pruner the flags replaced
    (options of evolution mean nothing to --strategy random, and would be refused)."""
    for key, default in (("strategy", "evolution"), ("pruner", "none")):
        chosen = overrides.get(key)
        replaced = chosen is not None and chosen != base.get(key, default)
        if replaced and overrides.get(f"{key}_options") is None:
            base = {k: v for k, v in base.items() if k != f"{key}_options"}
    return base


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RunConfig:
    """The run config of a YAML file (optional) with CLI overrides (dotted keys) on top."""
    base = _drop_foreign_options(read_yaml(path) if path is not None else {}, overrides or {})
    given = {k for k, v in (overrides or {}).items() if v is not None}
    return parse_config(
        merge(base, overrides or {}), from_cli=given, source=str(path) if path else None
    )


__all__ = [
    "OBJECTIVES",
    "PRUNER_NAMES",
    "SPACE_NAMES",
    "ConfigError",
    "ConstraintsConfig",
    "OneshotOptions",
    "RunConfig",
    "SpaceConfig",
    "TrainOptions",
    "load_config",
    "parse_config",
    "parse_duration",
]
