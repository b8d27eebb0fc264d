"""MNIST and Fashion-MNIST from the official IDX gzip files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from normnas.data.common import make_bundle, to_nchw_float
from normnas.data.download import check_md5, download
from normnas.data.split import DataBundle

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
FASHION_CLASSES += ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_SOURCES: dict[str, dict] = {
    "mnist": {
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "classes": [str(i) for i in range(10)],
    },
    "fashion-mnist": {
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "classes": FASHION_CLASSES,
    },
}
IDX_UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A gzip IDX file of unsigned bytes with `ndim` dimensions (3 images, 1 labels)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read gzip IDX file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or raw[3] != ndim:
        magic = raw[:4].hex() if len(raw) >= 4 else raw.hex()
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic} (expected 0x000008{ndim:02x}: "
            f"unsigned bytes, {ndim} dimensions)"
        )
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise ValueError(
            f"{path}: IDX size mismatch: header says {dims} = {int(np.prod(dims))} bytes, "
            f"file has {len(raw) - header}"
        )
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(dims)


def find_or_fetch(name: str, root: Path, download_ok: bool = True) -> dict[str, Path]:
    """Paths of the four files under root/<name>/ (or root itself), downloading what is missing."""
    src = IDX_SOURCES[name]
    folder = root / name
    if (
        not (folder / IDX_FILES["train_images"]).is_file()
        and (root / IDX_FILES["train_images"]).is_file()
    ):
        folder = root
    paths = {}
    for key, fname in IDX_FILES.items():
        path = folder / fname
        if path.is_file():
            check_md5(path, src["md5"][fname])
        elif download_ok:
            download(src["url"] + fname, path, src["md5"][fname])
        else:
            raise FileNotFoundError(f"{path}: {name} file missing; pass download=True")
        paths[key] = path
    return paths


def load_idx_dataset(
    name: str, root: Path, download_ok: bool = True, valid_fraction: float = 0.1, seed: int = 0
) -> DataBundle:
    """60,000 train / 10,000 test grey 28x28 images, 10 classes; valid split off train."""
    paths = find_or_fetch(name, root, download_ok)
    arrays = {}
    for split in ("train", "test"):
        x = read_idx(paths[f"{split}_images"], 3)
        y = read_idx(paths[f"{split}_labels"], 1).astype(np.int64)
        if len(x) != len(y):
            raise ValueError(
                f"{paths[f'{split}_labels']}: {len(y)} labels for {len(x)} images "
                f"in {paths[f'{split}_images'].name}"
            )
        if y.size and y.max() > 9:
            raise ValueError(f"{paths[f'{split}_labels']}: label {y.max()} outside 0..9")
        arrays[split] = (to_nchw_float(x), y)
    return make_bundle(
        name,
        arrays["train"][0],
        arrays["train"][1],
        arrays["test"][0],
        arrays["test"][1],
        num_classes=10,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
        classes=list(IDX_SOURCES[name]["classes"]),
    )
