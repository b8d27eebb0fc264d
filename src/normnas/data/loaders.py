"""`load(name)`: every data set by name, or by the path of an .npz file or image folder."""

from __future__ import annotations

from pathlib import Path

from normnas.data.common import check_split_args
from normnas.data.download import default_root
from normnas.data.split import DataBundle
from normnas.errors import DataError

DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "cifar10",
    "mnist",
    "fashion-mnist",
    "npz:PATH",
    "folder:PATH",
    "ucr:NAME",
)
IDX_NAMES = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
}


def _check_ten(name: str, num_classes: int | None) -> None:
    if num_classes is not None and num_classes < 10:
        raise DataError(f"num_classes={num_classes} but {name} has 10 classes (labels 0..9)")


def load(
    name: str,
    root: str | Path | None = None,
    download: bool = True,
    verify: bool = True,
    valid_fraction: float = 0.1,
    seed: int = 0,
    num_classes: int | None = None,
    sequences: bool = False,
) -> DataBundle:
    """Load data set `name` as train/valid/test splits normalized with train-split statistics.

    `name` is one of DATASET_NAMES, or the path of an existing .npz file or image folder
    (a name wins over a same-named path: write ./mnist for the folder). `root` is where
    downloaded data lives (default $NORMNAS_DATA or ~/.cache/normnas/data); `verify=False`
    accepts archives whose MD5 differs from the official one (a repack). The valid split is
    `valid_fraction` of the training data, stratified, chosen by `seed`. `num_classes`
    declares the class count (labels must be below it). `sequences` reads a 3-D float npz
    array as (N, T, C) sequences rather than (N, H, W) grey images (a sequence space's data).
    """
    check_split_args(valid_fraction, seed)
    if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 1):
        raise DataError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    key = name.strip()
    lower = key.lower()
    base = Path(root).expanduser() if root is not None else default_root()
    if lower == "digits":
        from normnas.data.digits import load_digits_bundle

        _check_ten("digits", num_classes)
        return load_digits_bundle(valid_fraction, seed)
    if lower in ("cifar10", "cifar-10"):
        from normnas.data.cifar import load_cifar10

        _check_ten("cifar10", num_classes)
        return load_cifar10(
            base, download, valid_fraction, seed, verify=verify, num_classes=num_classes
        )
    if lower in IDX_NAMES:
        from normnas.data.idx import load_idx_dataset

        _check_ten(IDX_NAMES[lower], num_classes)
        return load_idx_dataset(
            IDX_NAMES[lower], base, download, valid_fraction, seed, verify, num_classes
        )
    if lower.startswith("npz:"):
        from normnas.data.custom import load_npz

        return load_npz(
            Path(key[4:]).expanduser(), valid_fraction, seed, num_classes, sequences
        )
    if lower.startswith("ucr:"):
        from normnas.data.ucr import load_ucr

        return load_ucr(key[4:], valid_fraction, seed, num_classes)
    if lower.startswith("folder:"):
        from normnas.data.custom import load_folder

        return load_folder(Path(key[7:]).expanduser(), valid_fraction, seed, num_classes)
    path = Path(key).expanduser()
    if key and path.is_dir():
        from normnas.data.custom import load_folder

        return load_folder(path, valid_fraction, seed, num_classes)
    if key and path.is_file():
        from normnas.data.custom import load_npz

        return load_npz(path, valid_fraction, seed, num_classes, sequences)
    raise DataError(
        f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}, or the path "
        "of an .npz file or image folder (a path must exist)"
    )
