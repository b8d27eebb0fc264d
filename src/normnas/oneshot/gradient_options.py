"""The settings of a gradient search (DARTS, GDAS, DrNAS): `GradientOptions` and the names
it accepts.

Its own module so that the loop (`oneshot.gradient`) and the derivation
(`oneshot.gradient_select`) both read it without importing each other;
`normnas.oneshot.gradient` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

from normnas.errors import ConfigError

METHODS = ("darts", "gdas", "drnas")
SELECTIONS = ("argmax", "pt")


@dataclass(frozen=True)
class GradientOptions:
    """A gradient search's settings; defaults are the published DARTS/NB201 ones."""

    method: str = "darts"
    order: int = 1
    epochs: int = 50
    batch_size: int = 64
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_wd: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_wd: float = 1e-3
    tau_max: float = 10.0
    tau_min: float = 0.1
    drnas_reg: float = 1e-3
    selection: str = "argmax"
    # None: DARTS's own derivation excludes `none`; NB201's GDAS/DrNAS take the plain argmax
    exclude_none: bool | None = None
    pt_tune_epochs: int = 1
    pt_batches: int = 8  # validation batches per DARTS-PT measurement
    affine: bool = False
    track_running_stats: bool = False
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        if self.order not in (1, 2) or (self.order == 2 and self.method != "darts"):
            raise ConfigError(f"order: 1, or 2 for darts only; got {self.order} for {self.method}")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection: expected argmax or pt, got {self.selection!r}")
        for name in ("epochs", "batch_size", "pt_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        for name in ("w_lr", "arch_lr", "tau_max", "tau_min"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: expected a number > 0, got {getattr(self, name)}")
        if self.tau_min > self.tau_max:
            raise ConfigError(f"tau_min: {self.tau_min} exceeds tau_max {self.tau_max}")

    @property
    def excludes_none(self) -> bool:
        return self.method == "darts" if self.exclude_none is None else self.exclude_none

    def tau(self, epoch: int) -> float:
        """GDAS's temperature at `epoch` (0-based): linear from tau_max to tau_min."""
        if self.epochs == 1:
            return self.tau_max
        return self.tau_max - (self.tau_max - self.tau_min) * epoch / (self.epochs - 1)
