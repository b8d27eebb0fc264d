"""MNIST and Fashion-MNIST from the official IDX gzip files.

Each file is judged like the CIFAR-10 archive: the official MD5 is accepted at once; a file
that does not decompress completely is truncated (delete it, download again); one that does
but has another MD5 may be a repack (accept it with --no-verify). A file on disk is never
downloaded again.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from normnas.data.common import check_split_args, make_bundle, to_nchw_float
from normnas.data.download import (
    PART,
    READ_ERRORS,
    check_archive,
    download,
    prepare_root,
    read_gzip_through,
    remove_stale,
    truncated_error,
)
from normnas.data.split import DataBundle
from normnas.errors import DataError

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
GZIP_KIND = "gzip file"


def read_idx(path: Path, ndim: int, url: str | None = None) -> np.ndarray:
    """A gzip IDX file of unsigned bytes with `ndim` dimensions (3 images, 1 labels).

    `url` is the official address named when the file turns out truncated.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except READ_ERRORS as e:
        raise truncated_error(path, GZIP_KIND, url or "of the data set", e) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or raw[3] != ndim:
        magic = raw[:4].hex() if len(raw) >= 4 else raw.hex()
        raise DataError(
            f"{path}: bad IDX magic number 0x{magic} (expected 0x000008{ndim:02x}: "
            f"unsigned bytes, {ndim} dimensions)"
        )
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise DataError(
            f"{path}: IDX size mismatch: header says {dims} = {int(np.prod(dims))} bytes, "
            f"file has {len(raw) - header}"
        )
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(dims)


def find_or_fetch(
    name: str, root: Path, download_ok: bool = True, verify: bool = True
) -> dict[str, Path]:
    """Paths of the four files under root/<name>/ (or root itself), downloading what is missing."""
    src = IDX_SOURCES[name]
    prepare_root(root)
    folder = root / name
    if (
        not (folder / IDX_FILES["train_images"]).is_file()
        and (root / IDX_FILES["train_images"]).is_file()
    ):
        folder = root
    prepare_root(folder)
    paths = {key: folder / fname for key, fname in IDX_FILES.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing and not download_ok:
        raise DataError(
            f"{', '.join(missing)} not found in {folder} and downloads are off "
            f"(download=False); place the official {name} files there ({src['url']}), "
            "or pass --data-root"
        )
    for p in paths.values():
        remove_stale(folder, p.name + PART)
        if not p.is_file():
            download(src["url"] + p.name, p)
    for p in paths.values():
        url = src["url"] + p.name
        check_archive(p, src["md5"][p.name], verify, url, read_gzip_through, GZIP_KIND)
    return paths


def load_idx_dataset(
    name: str,
    root: Path,
    download_ok: bool = True,
    valid_fraction: float = 0.1,
    seed: int = 0,
    verify: bool = True,
    num_classes: int | None = None,
) -> DataBundle:
    """60,000 train / 10,000 test grey 28x28 images, 10 classes; valid split off train."""
    check_split_args(valid_fraction, seed)
    paths = find_or_fetch(name, root, download_ok, verify)
    url = IDX_SOURCES[name]["url"]
    arrays = {}
    for split in ("train", "test"):
        images, labels = paths[f"{split}_images"], paths[f"{split}_labels"]
        x = read_idx(images, 3, url + images.name)
        y = read_idx(labels, 1, url + labels.name).astype(np.int64)
        if len(x) != len(y):
            raise DataError(f"{labels}: {len(y)} labels for {len(x)} images in {images.name}")
        if y.size and y.max() > 9:
            raise DataError(f"{labels}: label {y.max()} outside 0..9")
        arrays[split] = (to_nchw_float(x), y)
    return make_bundle(
        name,
        arrays["train"][0],
        arrays["train"][1],
        arrays["test"][0],
        arrays["test"][1],
        num_classes=10 if num_classes is None else num_classes,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
        classes=list(IDX_SOURCES[name]["classes"]),
    )
