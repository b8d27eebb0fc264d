"""`load(name)`: every data set by name."""

from __future__ import annotations

from pathlib import Path

from normnas.data.download import default_root
from normnas.data.split import DataBundle

DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "cifar10",
    "mnist",
    "fashion-mnist",
    "npz:PATH",
    "folder:PATH",
)


def load(
    name: str,
    root: str | Path | None = None,
    download: bool = True,
    valid_fraction: float = 0.1,
    seed: int = 0,
) -> DataBundle:
    """Load data set `name` as train/valid/test splits normalized with train-split statistics.

    `root` is where downloaded data lives (default $NORMNAS_DATA or ~/.cache/normnas/data);
    the valid split is `valid_fraction` of the training data, stratified, chosen by `seed`.
    """
    key = name.strip()
    lower = key.lower()
    base = Path(root).expanduser() if root is not None else default_root()
    if lower == "digits":
        from normnas.data.digits import load_digits_bundle

        return load_digits_bundle(valid_fraction, seed)
    if lower in ("cifar10", "cifar-10"):
        from normnas.data.cifar import load_cifar10

        return load_cifar10(base, download, valid_fraction, seed)
    if lower in ("mnist", "fashion-mnist", "fashion_mnist", "fashionmnist"):
        from normnas.data.idx import load_idx_dataset

        canonical = "mnist" if lower == "mnist" else "fashion-mnist"
        return load_idx_dataset(canonical, base, download, valid_fraction, seed)
    if lower.startswith("npz:"):
        from normnas.data.custom import load_npz

        return load_npz(Path(key[4:]).expanduser(), valid_fraction, seed)
    if lower.startswith("folder:"):
        from normnas.data.custom import load_folder

        return load_folder(Path(key[7:]).expanduser(), valid_fraction, seed)
    raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}")
