"""A user's own data: `npz:PATH` (arrays x, y) and `folder:PATH` (a sub-folder per class)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normnas.data.common import make_bundle, to_nchw_float
from normnas.data.split import DataBundle

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_CHANNELS = 4


def image_layout(shape: tuple[int, ...], where: str) -> str:
    """'nhwc', 'nchw' or 'nhw' for an image array shape; ValueError naming `where` otherwise."""
    if len(shape) == 3:
        return "nhw"
    if len(shape) != 4:
        raise ValueError(
            f"{where}: x must be N x H x W x C, N x C x H x W or N x H x W, got shape {shape}"
        )
    if shape[3] <= MAX_CHANNELS:
        return "nhwc"
    if shape[1] <= MAX_CHANNELS:
        return "nchw"
    raise ValueError(
        f"{where}: cannot tell the channel axis of shape {shape}: "
        f"dim 1 or 3 must be the channels (<= {MAX_CHANNELS})"
    )


def check_labels(y: np.ndarray, n: int, num_classes: int | None, where: str) -> np.ndarray:
    """Integer labels (N,) in [0, num_classes): ValueError naming `where` otherwise."""
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{where}: y must have shape ({n},) to match x, got {y.shape}")
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
    )
    if not integral:
        raise ValueError(f"{where}: y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{where}: label {y.min()} out of range (labels must be >= 0)")
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise ValueError(
            f"{where}: label {y.max()} out of range [0, {num_classes}) (num_classes={num_classes})"
        )
    return y


def load_npz(path: Path, valid_fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """Arrays `x`, `y` (and optionally `x_test`, `y_test`, `num_classes`) from an .npz file.

    Images are N x H x W x C, N x C x H x W (C <= 4) or N x H x W; uint8 is scaled to [0, 1],
    float is used as is. Without x_test/y_test a fixed stratified 20% becomes the test split.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: npz file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read npz ({e})") from e
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key!r} (has {sorted(arrays)})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{path}: x_test and y_test must be given together")
    num_classes = int(arrays["num_classes"]) if "num_classes" in arrays else None
    x = arrays["x"]
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{path}: x must be uint8 or float, got dtype {x.dtype}")
    layout = image_layout(x.shape, f"{path} x")
    y = check_labels(arrays["y"], len(x), num_classes, f"{path} y")
    x_test = y_test = None
    if "x_test" in arrays:
        xt = arrays["x_test"]
        if image_layout(xt.shape, f"{path} x_test") != layout or xt.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"{path}: x_test shape {xt.shape} does not match x shape {x.shape} per image"
            )
        y_test = check_labels(arrays["y_test"], len(xt), num_classes, f"{path} y_test")
        x_test = to_nchw_float(xt, layout)
    if num_classes is None:
        num_classes = int(max(y.max(initial=0), -1 if y_test is None else y_test.max(initial=0)))
        num_classes += 1
    return make_bundle(
        f"npz:{path}",
        to_nchw_float(x, layout),
        y,
        x_test,
        y_test,
        num_classes=num_classes,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
    )


def _read_class_folders(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected one folder of images per class)")
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        images = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"{root / cls}: empty class folder (no .png/.jpg/.jpeg images)")
        files.extend((p, label) for p in images)
    pics = []
    for p, _ in files:
        try:
            with Image.open(p) as im:
                im.load()
                pics.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{p}: cannot read image ({e})") from e
    mode = "L" if all(im.mode in ("L", "1", "I", "I;16") for im in pics) else "RGB"
    size = pics[0].size
    arrays = []
    for (p, _), im in zip(files, pics, strict=True):
        if im.size != size:
            raise ValueError(
                f"{p}: image size {im.size[0]}x{im.size[1]} differs from "
                f"{size[0]}x{size[1]} of {files[0][0]}; resize the images to one size"
            )
        arrays.append(np.asarray(im.convert(mode), dtype=np.uint8))
    x = np.stack(arrays)
    y = np.array([label for _, label in files], dtype=np.int64)
    return x, y, classes


def load_folder(path: Path, valid_fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """PNG/JPEG images in one sub-folder per class (sorted names = labels 0..K-1).

    If PATH has `train/` and `test/` sub-folders, those are the splits; otherwise a fixed
    stratified 20% is the test split. All images must have one size; grey stays 1 channel.
    """
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: image folder not found")
    if (path / "train").is_dir() and (path / "test").is_dir():
        x, y, classes = _read_class_folders(path / "train")
        xt, yt, test_classes = _read_class_folders(path / "test")
        if test_classes != classes:
            raise ValueError(
                f"{path / 'test'}: class folders {test_classes} differ from train's {classes}"
            )
        if xt.shape[1:] != x.shape[1:]:
            raise ValueError(f"{path / 'test'}: images {xt.shape[1:]} differ from train's")
        x_test, y_test = to_nchw_float(xt), yt
    else:
        x, y, classes = _read_class_folders(path)
        x_test = y_test = None
    return make_bundle(
        f"folder:{path}",
        to_nchw_float(x),
        y,
        x_test,
        y_test,
        num_classes=len(classes),
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
        classes=classes,
    )
