"""A user's own data: `npz:PATH` (arrays x, y) and `folder:PATH` (a sub-folder per class)."""

from __future__ import annotations

import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from normnas.data.common import (
    DataWarning,
    check_images,
    check_split_args,
    infer_num_classes,
    make_bundle,
    to_nchw_float,
)
from normnas.data.download import reason
from normnas.data.split import DataBundle
from normnas.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_CHANNELS = 4


def image_layout(shape: tuple[int, ...], where: str) -> str:
    """'nhwc', 'nchw' or 'nhw' for an image array shape; DataError naming `where` otherwise."""
    if len(shape) == 3:
        return "nhw"
    if len(shape) != 4:
        raise DataError(
            f"{where}: x must be N x H x W x C, N x C x H x W or N x H x W, got shape {shape}"
        )
    if shape[3] <= MAX_CHANNELS:
        return "nhwc"
    if shape[1] <= MAX_CHANNELS:
        return "nchw"
    raise DataError(
        f"{where}: cannot tell the channel axis of shape {shape}: "
        f"dim 1 or 3 must be the channels (<= {MAX_CHANNELS})"
    )


SEQUENCE_LAYOUTS = ("ntc", "nhw")  # what an npz file's optional `layout` array may say


def npz_layout(
    x: np.ndarray, stated: np.ndarray | None, where: str, sequences: bool = False
) -> str:
    """The layout of an npz `x`: an array `layout` in the file ('ntc' or 'nhw') says it
    outright; else a 3-D float array is (N, T, C) sequences when `sequences` (a sequence
    space asked for the data) and (N, H, W) grey images otherwise, as it always was; a 3-D
    uint8 array is grey images (pixels are bytes). 4-D arrays are images."""
    if stated is not None:
        text = str(stated.item()) if stated.size == 1 else ""
        if text not in SEQUENCE_LAYOUTS:
            raise DataError(
                f"{where}: layout must be one of {list(SEQUENCE_LAYOUTS)}, got {stated!r}"
            )
        if x.ndim != 3:
            raise DataError(f"{where}: layout={text!r} needs a 3-D x, got shape {x.shape}")
        return text
    if sequences and x.ndim == 3 and np.issubdtype(x.dtype, np.floating):
        return "ntc"
    return image_layout(x.shape, where)


def to_nct_float(x: np.ndarray) -> torch.Tensor:
    """(N, T, C) float array to a float32 (N, C, T) tensor, values as they are."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 2, 1))).float()


def check_labels(y: np.ndarray, n: int, num_classes: int | None, where: str) -> np.ndarray:
    """Integer labels (N,) in [0, num_classes): DataError naming `where` otherwise."""
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{where}: y must have shape ({n},) to match x, got {y.shape}")
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating)
        and bool(np.all(np.isfinite(y)))
        and bool(np.all(np.mod(y, 1) == 0))
    )
    if not integral:
        raise DataError(f"{where}: y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{where}: label {y.min()} out of range (labels must be >= 0)")
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise DataError(
            f"{where}: label {y.max()} out of range [0, {num_classes}) (num_classes={num_classes})"
        )
    return y


# What np.load raises on a damaged file: a truncated or bit-flipped zip (BadZipFile),
# a broken deflate stream (zlib.error), a short member (EOFError), a mangled .npy header
# (ValueError, SyntaxError, TokenError from parsing it), an odd zip feature
# (NotImplementedError), and OSError for the file itself.
NPZ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    SyntaxError,
    tokenize.TokenError,
    NotImplementedError,
)


def _npz_reason(e: BaseException, member: str | None) -> str:
    # numpy says "pickled data" for any bytes that are neither zip nor .npy: say what it is
    if "pickle" in str(e):
        if member is None:
            return "neither a zip archive of .npy arrays nor an .npy array"
        return f"array {member!r} holds Python objects, not numbers"
    if isinstance(e, EOFError) and member is None:
        return "the file is empty or cut short"
    where = "" if member is None else f"array {member!r}: "
    return where + reason(e)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file; DataError "<path>: not a readable .npz file (...)"."""
    if path.is_dir():
        raise DataError(f"{path}: a folder, not an .npz file (for images use folder:{path})")
    if not path.is_file():
        raise DataError(f"{path}: npz file not found")
    try:
        f = np.load(path, allow_pickle=False)
    except NPZ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npz file ({_npz_reason(e, None)})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path}: a single .npy array, not an .npz file holding arrays x and y "
            "(save with numpy.savez(path, x=..., y=...))"
        )
    arrays: dict[str, np.ndarray] = {}
    with f:
        for key in f.files:
            try:
                arrays[key] = f[key]
            except NPZ_ERRORS as e:
                msg = f"{path}: not a readable .npz file ({_npz_reason(e, key)})"
                raise DataError(msg) from None
    return arrays


def load_npz(
    path: Path,
    valid_fraction: float = 0.1,
    seed: int = 0,
    num_classes: int | None = None,
    sequences: bool = False,
) -> DataBundle:
    """Arrays `x`, `y` (and optionally `x_test`, `y_test`, `num_classes`) from an .npz file.

    Images are N x H x W x C, N x C x H x W (C <= 4) or N x H x W; uint8 is scaled to [0, 1],
    float is used as is. Sequences are N x T x C float, used as (N, C, T): a 3-D float x read
    with `sequences` (a sequence space), or any 3-D x whose file holds `layout='ntc'`.
    Without x_test/y_test a fixed stratified 20% becomes the test split.
    `num_classes` (argument, else the file's array) declares the class count; without it,
    it is max label + 1, refused when labels are far sparser (see `infer_num_classes`).
    """
    check_split_args(valid_fraction, seed)
    arrays = read_npz(path)
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path}: missing array {key!r} (has {sorted(arrays)})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: x_test and y_test must be given together")
    if num_classes is None and "num_classes" in arrays:
        stored = arrays["num_classes"]
        if stored.size != 1 or not np.issubdtype(stored.dtype, np.integer) or int(stored) < 1:
            raise DataError(f"{path}: num_classes must be one integer >= 1, got {stored!r}")
        num_classes = int(stored)
    x = arrays["x"]
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: x must be uint8 or float, got dtype {x.dtype}")
    layout = npz_layout(x, arrays.get("layout"), f"{path} x", sequences)
    check_images(x, f"{path} x")
    y = check_labels(arrays["y"], len(x), num_classes, f"{path} y")
    x_test = y_test = None
    if "x_test" in arrays:
        xt = arrays["x_test"]
        if xt.dtype != np.uint8 and not np.issubdtype(xt.dtype, np.floating):
            raise DataError(f"{path}: x_test must be uint8 or float, got dtype {xt.dtype}")
        if xt.ndim != x.ndim or xt.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{path}: x_test shape {xt.shape} does not match x shape {x.shape} per image"
            )
        check_images(xt, f"{path} x_test")
        y_test = check_labels(arrays["y_test"], len(xt), num_classes, f"{path} y_test")
        x_test = to_nct_float(xt) if layout == "ntc" else to_nchw_float(xt, layout)
    labels = [y] if y_test is None else [y, y_test]
    num_classes = infer_num_classes(labels, num_classes, str(path))
    return make_bundle(
        f"npz:{path}",
        to_nct_float(x) if layout == "ntc" else to_nchw_float(x, layout),
        y,
        x_test,
        y_test,
        num_classes=num_classes,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
    )


def _class_images(folder: Path) -> list[Path]:
    """Every image file of one class: in `folder` or any sub-folder of it, sorted by path.

    Nested images are read rather than dropped (a class split into sub-folders by date or
    source is still one class), and a DataWarning says how many came from sub-folders so
    a folder that was meant as a separate class does not go unnoticed. Hidden sub-folders
    (.ipynb_checkpoints, .thumbnails) hold copies or caches, not data: they are skipped.
    """
    images = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])
    )
    nested = sum(1 for p in images if p.parent != folder)
    if nested:
        warnings.warn(
            f"{folder}: {nested} of the {len(images)} images of class {folder.name!r} are in "
            "its sub-folders; they were read as that class",
            DataWarning,
            stacklevel=2,
        )
    return images


def _read_class_folders(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected one folder of images per class)")
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        images = _class_images(root / cls)
        if not images:
            raise DataError(f"{root / cls}: empty class folder (no .png/.jpg/.jpeg images)")
        files.extend((p, label) for p in images)
    pics = []
    for p, _ in files:
        try:
            with Image.open(p) as im:
                im.load()
                pics.append(im.copy())
        # a broken PNG chunk raises SyntaxError, an absurd size DecompressionBombError
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
        ) as e:
            raise DataError(f"{p}: cannot read image ({reason(e)})") from None
    mode = "L" if all(im.mode in ("L", "1", "I", "I;16") for im in pics) else "RGB"
    size = pics[0].size
    arrays = []
    for (p, _), im in zip(files, pics, strict=True):
        if im.size != size:
            raise DataError(
                f"{p}: image size {im.size[0]}x{im.size[1]} differs from "
                f"{size[0]}x{size[1]} of {files[0][0]}; resize the images to one size"
            )
        arrays.append(np.asarray(im.convert(mode), dtype=np.uint8))
    x = np.stack(arrays)
    y = np.array([label for _, label in files], dtype=np.int64)
    return x, y, classes


def load_folder(
    path: Path, valid_fraction: float = 0.1, seed: int = 0, num_classes: int | None = None
) -> DataBundle:
    """PNG/JPEG images in one sub-folder per class (sorted names = labels 0..K-1); a class's
    images are all those under its folder, at any depth (a warning counts the nested ones).

    If PATH has `train/` and `test/` sub-folders, those are the splits; otherwise a fixed
    stratified 20% is the test split. All images must have one size; grey stays 1 channel.
    `num_classes`, if given, must be at least the number of class folders.
    """
    check_split_args(valid_fraction, seed)
    if path.is_file():
        raise DataError(f"{path}: a file, not an image folder (for arrays use npz:{path})")
    if not path.is_dir():
        raise DataError(f"{path}: image folder not found")
    if (path / "train").is_dir() and (path / "test").is_dir():
        x, y, classes = _read_class_folders(path / "train")
        xt, yt, test_classes = _read_class_folders(path / "test")
        if test_classes != classes:
            raise DataError(
                f"{path / 'test'}: class folders {test_classes} differ from train's {classes}"
            )
        if xt.shape[1:] != x.shape[1:]:
            raise DataError(f"{path / 'test'}: images {xt.shape[1:]} differ from train's")
        x_test, y_test = to_nchw_float(xt), yt
    else:
        x, y, classes = _read_class_folders(path)
        x_test = y_test = None
    if num_classes is not None and num_classes < len(classes):
        raise DataError(
            f"{path}: num_classes={num_classes} but there are {len(classes)} class folders"
        )
    return make_bundle(
        f"folder:{path}",
        to_nchw_float(x),
        y,
        x_test,
        y_test,
        num_classes=len(classes) if num_classes is None else num_classes,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
        classes=classes,
    )
