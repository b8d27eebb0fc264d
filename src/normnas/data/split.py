"""In-memory data splits: normalized tensors, batches by index slicing, tensor augmentation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from normnas.data.transforms import random_crop_flip


@dataclass(eq=False)
class Split:
    """One split of a data set: `x` float32 (N, C, H, W) images or (N, C, T) sequences,
    normalized, `y` int64 (N,).

    `augment=True` applies random crop (4-px zero padding) + horizontal flip to every
    training batch, on the whole batch at once (no per-sample Python work); images only.
    """

    x: torch.Tensor
    y: torch.Tensor
    augment: bool = False
    padding: int = 4
    # copies on accelerators, made on first use; not an init field, so
    # dataclasses.replace(split, x=...) starts a fresh cache
    _device_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.x.ndim not in (3, 4):
            raise ValueError(
                f"Split.x must be (N, C, H, W) or (N, C, T), got shape {tuple(self.x.shape)}"
            )
        if self.augment and self.x.ndim != 4:
            raise ValueError("Split.augment (crop and flip) is for (N, C, H, W) images only")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise ValueError(
                f"Split.y must be (N,) with N={len(self.x)}, got shape {tuple(self.y.shape)}"
            )
        self.x = self.x.float()
        self.y = self.y.long()

    def __len__(self) -> int:
        return len(self.y)

    def on(self, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) on `device`, copied there once and kept (so an epoch does no host copy)."""
        key = str(torch.device(device))
        if key == "cpu":
            return self.x, self.y
        if key not in self._device_cache:
            self._device_cache[key] = (self.x.to(key), self.y.to(key))
        return self._device_cache[key]

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches by slicing the in-memory tensors; random parts use `generator`."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        x, y = self.on(device)
        n = len(self)
        perm = torch.randperm(n, generator=generator).to(x.device) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if perm is None:
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            else:
                idx = perm[start : start + batch_size]
                xb, yb = x[idx], y[idx]
            if self.augment:
                xb = random_crop_flip(xb, self.padding, generator)
            yield xb, yb


@dataclass(eq=False)
class DataBundle:
    """A data set ready to train on: three splits and what a model needs to know of it."""

    name: str
    train: Split
    valid: Split
    test: Split
    num_classes: int
    in_channels: int
    image_size: tuple[int, ...]  # (H, W) of images, (T,) of sequences
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] | None = None

    def train_plus_valid(self) -> Split:
        """Train and valid together (for the final retrain), augmented like train."""
        return Split(
            torch.cat([self.train.x, self.valid.x]),
            torch.cat([self.train.y, self.valid.y]),
            augment=self.train.augment,
            padding=self.train.padding,
        )

    @property
    def is_sequence(self) -> bool:
        """True for (N, C, T) sequences, False for (N, C, H, W) images."""
        return len(self.image_size) == 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: (C, H, W) or (C, T)."""
        return (self.in_channels, *self.image_size)

    def describe(self) -> str:
        shape = "x".join(str(s) for s in self.input_shape)
        kind = " (channels x length)" if self.is_sequence else ""
        return (
            f"{self.name}: {len(self.train)} train / {len(self.valid)} valid / "
            f"{len(self.test)} test, {shape}{kind}, {self.num_classes} classes"
        )
