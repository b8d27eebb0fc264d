"""Shared steps of every loader: usability checks, stratified splits, train-only statistics."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from normnas.data.split import DataBundle, Split
from normnas.errors import DataError

# The test split of data sets without an official one is fixed (not the run's seed), so
# every run of every seed is scored on the same images.
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0
SEED_MAX = 2**32 - 1  # scikit-learn's (and numpy's legacy) random_state range
MIN_PER_CLASS = 10  # fewer training samples than this in a class earns a DataWarning
# Labels are "far beyond" the classes present when max_label + 1 > FAR_LABELS x distinct
# labels: {0, 1, 1000} would make a 1001-way model for 3 classes, a mistake, not a choice.
FAR_LABELS = 2


class DataWarning(UserWarning):
    """A data set that loads but will train poorly: one class, or very few samples in one."""


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


def check_split_args(valid_fraction: float, seed: int) -> None:
    """DataError naming `valid_fraction` or `seed` when either is out of range."""
    if (
        isinstance(valid_fraction, bool)
        or not isinstance(valid_fraction, numbers.Real)
        or not 0.0 <= valid_fraction < 1.0
    ):
        raise DataError(f"valid_fraction must be a number in [0, 1), got {valid_fraction!r}")
    integral = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
    if not integral or not 0 <= seed <= SEED_MAX:
        raise DataError(f"seed must be an integer in 0..{SEED_MAX} (2**32-1), got {seed!r}")


def check_images(x: np.ndarray, where: str) -> None:
    """DataError naming `where` for an array no trial can train on: no samples, NaN/inf."""
    if len(x) == 0:
        raise DataError(f"{where}: 0 samples (the array is empty)")
    if np.issubdtype(x.dtype, np.floating):
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise DataError(
                f"{where}: {bad} of {x.size} pixel values are NaN or infinite; "
                "replace or drop those images"
            )


def infer_num_classes(labels: Sequence[np.ndarray], num_classes: int | None, where: str) -> int:
    """`num_classes` checked against the labels, or max label + 1 when labels are dense enough.

    Without `num_classes`, labels with max_label + 1 > 2 x (number of distinct labels) are
    refused: such a model would have mostly empty outputs, almost surely a labelling slip.
    """
    present = np.unique(np.concatenate([np.asarray(y, np.int64).ravel() for y in labels]))
    if present.size == 0:
        raise DataError(f"{where}: 0 labels")
    if present[0] < 0:
        raise DataError(f"{where}: label {int(present[0])} out of range (labels must be >= 0)")
    top = int(present[-1])
    if num_classes is not None:
        if top >= num_classes:
            raise DataError(
                f"{where}: label {top} out of range [0, {num_classes}) (num_classes={num_classes})"
            )
        return int(num_classes)
    if top + 1 > FAR_LABELS * present.size:
        shown = ", ".join(str(v) for v in present[:8]) + (", ..." if present.size > 8 else "")
        raise DataError(
            f"{where}: max label {top} but only {present.size} distinct labels ({shown}); "
            f"pass num_classes or relabel them 0..K-1 (labels are refused when max label + 1 "
            f"> {FAR_LABELS} x the number of distinct labels)"
        )
    return top + 1


def warn_class_counts(y: np.ndarray, num_classes: int, where: str) -> None:
    """DataWarning for one class only, or a class with fewer than MIN_PER_CLASS samples."""
    counts = np.bincount(np.asarray(y, np.int64), minlength=num_classes)
    present = np.flatnonzero(counts)
    if present.size == 1:
        warnings.warn(
            f"{where}: every training sample has label {int(present[0])} (a single class): "
            "accuracy says nothing about an architecture",
            DataWarning,
            stacklevel=4,
        )
        return
    few = [c for c in range(num_classes) if counts[c] < MIN_PER_CLASS]
    if few:
        shown = ", ".join(f"class {c}: {int(counts[c])}" for c in few[:6])
        more = f" and {len(few) - 6} more" if len(few) > 6 else ""
        warnings.warn(
            f"{where}: {len(few)} of {num_classes} classes have fewer than {MIN_PER_CLASS} "
            f"training samples ({shown}{more}); accuracies will be noisy",
            DataWarning,
            stacklevel=4,
        )


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with `fraction` of each class held out (sorted, stable)."""
    idx = np.arange(len(y))
    if fraction <= 0:
        return idx, idx[:0]
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and fraction * len(y) >= len(counts) else None
    keep, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(keep), np.sort(held)


def split_or_refuse(
    y: np.ndarray, fraction: float, seed: int, name: str, field: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """`stratified_split`, refusing (in our words, never scikit-learn's) a split that leaves
    fewer training samples than classes; `field` names the setting at fault (None: the
    fixed test split)."""
    n = len(y)
    held = math.ceil(fraction * n) if fraction > 0 else 0  # scikit-learn's own rounding
    kept = n - held
    classes = int(np.unique(y).size)
    if field is None:
        problem = (
            f"{name}: {n} samples are too few to hold out the fixed {TEST_FRACTION:.0%} "
            f"test split ({held}) and keep 1 training sample per class ({classes} classes); "
            "provide a test split (x_test/y_test, or test/ and train/ folders) or more data"
        )
    else:
        problem = (
            f"{name}: {field}={fraction} holds out {held} of the {n} training samples and "
            f"leaves {kept}, fewer than 1 per class ({classes} classes); lower {field}"
        )
    if fraction > 0 and kept < classes:
        raise DataError(problem)
    try:
        return stratified_split(y, fraction, seed)
    except ValueError:
        raise DataError(problem) from None


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) or (N, C, T) (float64 accumulation); std
    floored at 1e-6."""
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
    """Split off valid (and test if none is given), normalize with train stats, wrap up.

    Refuses (DataError naming `name`) empty data, labels outside [0, num_classes) and
    splits that leave a class without training samples; warns on tiny or single classes.
    """
    check_split_args(valid_fraction, seed)
    y_train = torch.as_tensor(np.asarray(y_train), dtype=torch.int64)
    if len(y_train) == 0:
        raise DataError(f"{name}: 0 training samples")
    labels = [y_train.numpy()] + ([] if y_test is None else [np.asarray(y_test)])
    infer_num_classes(labels, num_classes, name)  # labels in [0, num_classes)
    warn_class_counts(y_train.numpy(), num_classes, name)
    if x_test is None or y_test is None:
        rest, test = split_or_refuse(y_train.numpy(), TEST_FRACTION, TEST_SPLIT_SEED, name, None)
        x_test, y_test = x_train[test], y_train[test]
        x_train, y_train = x_train[rest], y_train[rest]
    y_test = torch.as_tensor(np.asarray(y_test), dtype=torch.int64)
    if len(y_test) == 0:
        raise DataError(f"{name}: 0 test samples")
    train_idx, valid_idx = split_or_refuse(
        y_train.numpy(), valid_fraction, seed, name, "valid_fraction"
    )
    xt, yt = x_train[train_idx], y_train[train_idx]
    xv, yv = x_train[valid_idx], y_train[valid_idx]
    mean, std = channel_stats(xt)
    per_channel = (1, -1) + (1,) * (xt.ndim - 2)  # images (N, C, H, W), sequences (N, C, T)
    m = torch.tensor(mean, dtype=torch.float32).view(per_channel)
    s = torch.tensor(std, dtype=torch.float32).view(per_channel)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return ((x - m) / s).contiguous()

    return DataBundle(
        name=name,
        train=Split(norm(xt), yt, augment=augment),
        valid=Split(norm(xv), yv, augment=False),
        test=Split(norm(x_test), y_test, augment=False),
        num_classes=num_classes,
        in_channels=int(xt.shape[1]),
        image_size=tuple(int(v) for v in xt.shape[2:]),
        mean=mean,
        std=std,
        classes=classes,
    )
