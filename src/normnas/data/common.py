"""Shared steps of every loader: stratified splits, train-only statistics, normalization."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from normnas.data.split import DataBundle, Split

# The test split of data sets without an official one is fixed (not the run's seed), so
# every run of every seed is scored on the same images.
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


def to_nchw_float(x: np.ndarray, layout: str = "nhwc", scale: float | None = None) -> torch.Tensor:
    """uint8/float array (N,H,W[,C]) or (N,C,H,W) to float32 tensor (N,C,H,W); uint8 -> [0,1]."""
    arr = np.asarray(x)
    if scale is None:
        scale = 255.0 if arr.dtype == np.uint8 else 1.0
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif layout == "nhwc":
        arr = arr.transpose(0, 3, 1, 2)
    t = torch.from_numpy(np.ascontiguousarray(arr)).float()
    return t / scale if scale != 1.0 else t


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with `fraction` of each class held out (sorted, stable)."""
    idx = np.arange(len(y))
    if fraction <= 0:
        return idx, idx[:0]
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and fraction * len(y) >= len(counts) else None
    keep, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(keep), np.sort(held)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) (float64 accumulation); std floored at 1e-6."""
    xd = x.double().transpose(0, 1).reshape(x.shape[1], -1)
    mean = xd.mean(1)
    std = xd.std(1, unbiased=False).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def make_bundle(
    name: str,
    x_train: torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    x_test: torch.Tensor | None,
    y_test: np.ndarray | torch.Tensor | None,
    num_classes: int,
    valid_fraction: float,
    seed: int,
    augment: bool,
    classes: list[str] | None = None,
) -> DataBundle:
    """Split off valid (and test if none is given), normalize with train stats, wrap up."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    y_train = torch.as_tensor(np.asarray(y_train), dtype=torch.int64)
    if x_test is None or y_test is None:
        rest, test = stratified_split(y_train.numpy(), TEST_FRACTION, TEST_SPLIT_SEED)
        x_test, y_test = x_train[test], y_train[test]
        x_train, y_train = x_train[rest], y_train[rest]
    y_test = torch.as_tensor(np.asarray(y_test), dtype=torch.int64)
    train_idx, valid_idx = stratified_split(y_train.numpy(), valid_fraction, seed)
    xt, yt = x_train[train_idx], y_train[train_idx]
    xv, yv = x_train[valid_idx], y_train[valid_idx]
    mean, std = channel_stats(xt)
    m = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32)[None, :, None, None]

    def norm(x: torch.Tensor) -> torch.Tensor:
        return ((x - m) / s).contiguous()

    return DataBundle(
        name=name,
        train=Split(norm(xt), yt, augment=augment),
        valid=Split(norm(xv), yv, augment=False),
        test=Split(norm(x_test), y_test, augment=False),
        num_classes=num_classes,
        in_channels=int(xt.shape[1]),
        image_size=(int(xt.shape[2]), int(xt.shape[3])),
        mean=mean,
        std=std,
        classes=classes,
    )
