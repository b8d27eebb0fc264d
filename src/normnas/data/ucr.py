"""`ucr:NAME`: the UCR/UEA time-series classification data sets that aeon ships in its wheel.

Only the files inside the installed `aeon` package are read (`aeon/datasets/data/NAME/
NAME_TRAIN.ts` and `NAME_TEST.ts`, through aeon's `load_from_ts_file`): nothing is ever
downloaded, so a name aeon does not bundle is refused with the list of those it does.

- split: the official train/test split; valid is carved from train as for images
  (stratified, `valid_fraction`, chosen by `seed`);
- normalization: per channel, with the statistics of the train split only;
- labels: the class values (strings in the .ts files) mapped to 0..K-1 in sorted order
  (numerically when every value is a number, so '10' comes after '9');
- lengths: sequences of varying length are refused in one line (no silent padding): aeon
  bundles an equal-length version of some (`ucr:JapaneseVowels_eq`), named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normnas.data.common import check_images, make_bundle
from normnas.data.split import DataBundle
from normnas.errors import DataError

SEQ_EXTRA = "pip install 'normnas[seq]'"


@dataclass(frozen=True)
class UcrArrays:
    """A bundled data set as aeon reads it: x (N, C, T) float64, labels 0..K-1, class names."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]


def _aeon_data_dir() -> Path:
    try:
        import aeon.datasets
    except ImportError:
        raise DataError(
            f"ucr: data sets need the aeon package, which is not installed; {SEQ_EXTRA}"
        ) from None
    return Path(aeon.datasets.__file__).parent / "data"


def _files(root: Path) -> dict[str, tuple[Path, Path]]:
    """Every NAME with both NAME_TRAIN.ts and NAME_TEST.ts under aeon's data folder."""
    out: dict[str, tuple[Path, Path]] = {}
    for train in sorted(root.glob("*/*_TRAIN.ts")):
        name = train.name.removesuffix("_TRAIN.ts")
        test = train.with_name(f"{name}_TEST.ts")
        if test.is_file():
            out[name] = (train, test)
    return out


def _is_classification(train: Path) -> bool:
    # the header says `@classLabel true ...` for classification, `@targetLabel` for regression
    with train.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip().lower()
            if text.startswith("@classlabel"):
                return text.split()[1:2] == ["true"]
            if text.startswith("@data"):
                break
    return False


def bundled_names() -> list[str]:
    """The classification data sets aeon bundles (regression sets left out), sorted."""
    files = _files(_aeon_data_dir())
    return sorted(
        (n for n, (train, _) in files.items() if _is_classification(train)), key=str.lower
    )


def _label_order(values: np.ndarray) -> list[str]:
    names = sorted({str(v) for v in values})
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def _as_array(x: object, name: str, split: str) -> np.ndarray:
    """aeon returns a 3-D array for equal lengths, a list of (C, T_i) arrays otherwise."""
    if isinstance(x, np.ndarray) and x.ndim == 3:
        return x.astype(np.float32)
    lengths = sorted({int(np.shape(s)[-1]) for s in x})  # type: ignore[attr-defined]
    if len(lengths) == 1:
        return np.stack([np.asarray(s, np.float32) for s in x])  # type: ignore[attr-defined]
    root = _aeon_data_dir()
    hint = (
        f"; aeon bundles an equal-length version: ucr:{name}_eq"
        if (f"{name}_eq" in _files(root))
        else ""
    )
    raise DataError(
        f"ucr:{name}: the {split} sequences have varying lengths ({lengths[0]}..{lengths[-1]}); "
        f"normnas takes equal-length sequences only (no padding){hint}"
    )


def load_ucr_arrays(name: str) -> UcrArrays:
    """The official train and test arrays of bundled data set `name` (case-insensitive)."""
    root = _aeon_data_dir()
    from aeon.datasets import load_from_ts_file

    files = _files(root)
    by_lower = {n.lower(): n for n in files}
    key = by_lower.get(name.strip().lower())
    if key is None or not _is_classification(files[key][0]):
        raise DataError(
            f"ucr:{name}: not a classification data set bundled with aeon (nothing is "
            f"downloaded); bundled: {', '.join(bundled_names())}"
        )
    train_path, test_path = files[key]
    x_train, y_train = load_from_ts_file(str(train_path))
    x_test, y_test = load_from_ts_file(str(test_path))
    xt, xs = _as_array(x_train, key, "train"), _as_array(x_test, key, "test")
    if xt.shape[1:] != xs.shape[1:]:
        raise DataError(
            f"ucr:{key}: train sequences are {xt.shape[1]}x{xt.shape[2]} (channels x length) "
            f"but test ones {xs.shape[1]}x{xs.shape[2]}"
        )
    check_images(xt, f"ucr:{key} train")  # NaN (missing values) refused in one line
    check_images(xs, f"ucr:{key} test")
    classes = _label_order(np.concatenate([y_train, y_test]))
    index = {c: i for i, c in enumerate(classes)}
    yt = np.array([index[str(v)] for v in y_train], np.int64)
    ys = np.array([index[str(v)] for v in y_test], np.int64)
    return UcrArrays(key, xt, yt, xs, ys, classes)


def load_ucr(
    name: str, valid_fraction: float = 0.1, seed: int = 0, num_classes: int | None = None
) -> DataBundle:
    """`ucr:NAME` as a DataBundle of (N, C, T) sequences (see the module doc)."""
    arrays = load_ucr_arrays(name)
    k = len(arrays.classes)
    if num_classes is not None and num_classes < k:
        raise DataError(f"ucr:{arrays.name}: num_classes={num_classes} but it has {k} classes")
    return make_bundle(
        f"ucr:{arrays.name}",
        torch.from_numpy(arrays.x_train),
        arrays.y_train,
        torch.from_numpy(arrays.x_test),
        arrays.y_test,
        num_classes=k if num_classes is None else num_classes,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
        classes=arrays.classes,
    )
