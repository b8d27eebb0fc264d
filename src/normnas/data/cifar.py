"""CIFAR-10 from the official python-pickle archive (cifar-10-python.tar.gz)."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from normnas.data.common import make_bundle, to_nchw_float
from normnas.data.download import check_md5, download
from normnas.data.split import DataBundle

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch file -> (uint8 N x 32 x 32 x 3, int64 N)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CIFAR-10 batch file missing")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        msg = f"{path}: not a CIFAR-10 batch (pickle with b'data', b'labels'): {e}"
        raise ValueError(msg) from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(
            f"{path}: b'data' must be N x 3072 with N labels, "
            f"got {data.shape} and {len(labels)} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def find_or_fetch(root: Path, download_ok: bool = True, md5: str | None = None) -> Path:
    """The extracted batches folder: already there, or extracted from a (downloaded) archive."""
    md5 = CIFAR10_MD5 if md5 is None else md5
    if root.name == CIFAR10_FOLDER and root.is_dir():
        return root
    folder = root / CIFAR10_FOLDER
    if folder.is_dir():
        return folder
    archive = root / CIFAR10_ARCHIVE
    if not archive.is_file():
        if not download_ok:
            raise FileNotFoundError(
                f"{archive} not found (nor {folder}); pass download=True or place it there"
            )
        download(CIFAR10_URL, archive, md5)
    check_md5(archive, md5)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):  # refuses absolute paths, links out of root
                tar.extractall(root, filter="data")
            else:  # Python < 3.10.12 has no extraction filters
                tar.extractall(root)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{archive}: cannot extract ({e})") from e
    if not folder.is_dir():
        raise ValueError(f"{archive}: archive has no {CIFAR10_FOLDER}/ folder")
    return folder


def load_cifar10(
    root: Path,
    download_ok: bool = True,
    valid_fraction: float = 0.1,
    seed: int = 0,
    md5: str | None = None,
) -> DataBundle:
    """50,000 train / 10,000 test 32x32 RGB images; valid is split off train (stratified)."""
    folder = find_or_fetch(root, download_ok, md5)
    missing = [f for f in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder / missing[0]}: CIFAR-10 batch file missing")
    parts = [read_batch(folder / f) for f in CIFAR10_TRAIN_FILES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = read_batch(folder / CIFAR10_TEST_FILE)
    return make_bundle(
        "cifar10",
        to_nchw_float(x_train),
        y_train,
        to_nchw_float(x_test),
        torch.from_numpy(y_test),
        num_classes=10,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=True,
        classes=list(CIFAR10_CLASSES),
    )
