"""CIFAR-10 from the official python-pickle archive (cifar-10-python.tar.gz).

Extraction is atomic: the archive is unpacked into `.cifar-10-batches-py.partial-<pid>` under
the root and renamed to `cifar-10-batches-py` only when complete, so a killed extraction
never leaves a folder that looks usable (and its leftover is removed by the next load).

An existing folder is trusted only when every batch file is present, non-empty and reads as
a CIFAR-10 batch (a pickled dict whose b"data" is N x 3072 bytes with N labels in 0..9).
The official files have the sizes in OFFICIAL_SIZES, which differ per batch (their file
names differ in length), so sizes are reported, not required: repacks and small archives
of the same format load too. Reading every batch is needed to load anyway, so this check
costs nothing extra and catches truncation anywhere in a file.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import torch

from normnas.data.common import check_split_args, make_bundle, to_nchw_float
from normnas.data.download import (
    READ_ERRORS,
    check_archive,
    check_writable,
    download,
    prepare_root,
    read_tar_gz_through,
    reason,
    remove_stale,
    truncated_error,
)
from normnas.data.split import DataBundle
from normnas.errors import DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_FILES = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
OFFICIAL_SIZES = {  # bytes, as extracted from the official archive
    "data_batch_1": 31035704,
    "data_batch_2": 31035320,
    "data_batch_3": 31035999,
    "data_batch_4": 31035696,
    "data_batch_5": 31035623,
    "test_batch": 31035526,
}
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
PARTIAL = f".{CIFAR10_FOLDER}.partial-"  # an extraction in progress (or killed): <pid> follows
OLD = f".{CIFAR10_FOLDER}.old-"  # a damaged folder set aside while its replacement moves in
ARCHIVE_KIND = "gzip tar archive"

Batch = tuple[np.ndarray, np.ndarray]


# What a CIFAR-10 batch pickle needs (a dict of bytes, lists and one uint8 array), and
# nothing else: a plain pickle.load would run any callable a crafted file names.
PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),  # written by numpy 1.x (the official files)
        ("numpy._core.multiarray", "_reconstruct"),  # written by numpy 2.x
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5 arrays
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol 2 stores bytes this way
    }
)


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


class BadBatch(Exception):
    """A batch file that is not a CIFAR-10 batch; `str()` says why (internal)."""


def parse_batch(path: Path) -> Batch:
    """One pickled batch file -> (uint8 N x 32 x 32 x 3, int64 N); BadBatch saying why not."""
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:  # unpickling arbitrary bytes can raise nearly any type
        msg = f"not a CIFAR-10 batch (pickle with b'data', b'labels'): {reason(e)}"
        raise BadBatch(msg) from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.ndim != 1 or len(labels) != len(data):
        raise BadBatch(
            f"b'data' must be N x 3072 with N labels, got {data.shape} and {labels.shape} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise BadBatch(f"labels must be in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_batch(path: Path) -> Batch:
    """One pickled batch file -> (uint8 N x 32 x 32 x 3, int64 N); DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: CIFAR-10 batch file missing")
    try:
        return parse_batch(path)
    except BadBatch as e:
        raise DataError(f"{path}: {e}") from None


def read_batches(folder: Path) -> tuple[dict[str, Batch], list[str]]:
    """Every batch of `folder` that reads, and one line per file that is missing or bad."""
    parts: dict[str, Batch] = {}
    problems: list[str] = []
    for name in CIFAR10_FILES:
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} (missing)")
            continue
        size = path.stat().st_size
        if size == 0:
            problems.append(f"{name} (empty)")
            continue
        try:
            parts[name] = parse_batch(path)
        except BadBatch as e:
            problems.append(f"{name} ({e}; {size} bytes, official {OFFICIAL_SIZES[name]})")
    return parts, problems


def install(new: Path, folder: Path, replace: bool) -> None:
    """Rename the complete folder `new` to `folder`; with `replace`, set a damaged one aside.

    Without `replace` a folder that appeared meanwhile came from another process's complete
    extraction (renamed into place like this one), so it is kept and `new` dropped.
    """
    old = None
    if replace and (folder.exists() or folder.is_symlink()):
        old = folder.with_name(f"{OLD}{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    try:
        os.replace(new, folder)
    except OSError:
        if not folder.is_dir():  # else another process installed a complete one first
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def extract(archive: Path, base: Path, replace: bool = False) -> None:
    """Extract `archive` into base/.cifar-10-batches-py.partial-<pid>, then rename it into
    place (`replace`: over the existing, damaged folder)."""
    check_writable(base)
    tmp = base / f"{PARTIAL}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):  # refuses absolute paths, links out of root
                tar.extractall(tmp, filter="data")
            else:  # Python < 3.10.12 has no extraction filters
                tar.extractall(tmp)
        if not (tmp / CIFAR10_FOLDER).is_dir():
            raise DataError(
                f"{archive}: the archive has no {CIFAR10_FOLDER}/ folder; it is not the "
                f"CIFAR-10 python archive ({CIFAR10_URL})"
            )
        install(tmp / CIFAR10_FOLDER, base / CIFAR10_FOLDER, replace)
    except READ_ERRORS as e:
        if isinstance(e, OSError) and e.errno is not None:
            # a file system failure (disk full, read-only, permissions), not a damaged archive
            raise DataError(f"{base}: cannot extract {archive.name} there ({reason(e)})") from None
        if hasattr(tarfile, "FilterError") and isinstance(e, tarfile.FilterError):
            msg = f"{archive}: refused to extract an unsafe member ({reason(e)})"
            raise DataError(msg) from None
        raise truncated_error(archive, ARCHIVE_KIND, CIFAR10_URL, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def locate_batches(
    root: Path, download_ok: bool = True, verify: bool = True, md5: str | None = None
) -> dict[str, Batch]:
    """All six batches: from a trusted folder, else (re-)extracted from a (downloaded) archive.

    An archive already on disk is never downloaded again: a checksum mismatch is reported
    (with the --no-verify way to accept a repack), a truncated file is reported as such.
    """
    md5 = CIFAR10_MD5 if md5 is None else md5
    # --data-root may name the extracted folder itself
    base = root.parent if root.name == CIFAR10_FOLDER and root.is_dir() else root
    prepare_root(base)
    folder, archive = base / CIFAR10_FOLDER, base / CIFAR10_ARCHIVE
    remove_stale(base, PARTIAL)
    remove_stale(base, OLD)
    damaged = folder.is_dir()
    if damaged:
        parts, problems = read_batches(folder)
        if not problems:
            return parts
        if not archive.is_file():
            raise DataError(
                f"{folder}: incomplete CIFAR-10 folder: {', '.join(problems)}; place the "
                f"official archive {CIFAR10_ARCHIVE} ({CIFAR10_URL}) in {base} to extract "
                "it again"
            )
    elif not archive.is_file():
        if not download_ok:
            raise DataError(
                f"{CIFAR10_ARCHIVE} not found in {base} (nor an extracted {CIFAR10_FOLDER}/) "
                f"and downloads are off (download=False); place the official archive "
                f"{CIFAR10_ARCHIVE} there ({CIFAR10_URL}), or pass --data-root"
            )
        download(CIFAR10_URL, archive)
    check_archive(archive, md5, verify, CIFAR10_URL, read_tar_gz_through, ARCHIVE_KIND)
    extract(archive, base, replace=damaged)
    parts, problems = read_batches(folder)
    if problems:
        raise DataError(
            f"{archive}: extracted to {folder}, but {', '.join(problems)}; "
            f"use the official archive ({CIFAR10_URL})"
        )
    return parts


def load_cifar10(
    root: Path,
    download_ok: bool = True,
    valid_fraction: float = 0.1,
    seed: int = 0,
    md5: str | None = None,
    verify: bool = True,
    num_classes: int | None = None,
) -> DataBundle:
    """50,000 train / 10,000 test 32x32 RGB images; valid is split off train (stratified)."""
    check_split_args(valid_fraction, seed)  # before reading 180 MB
    parts = locate_batches(root, download_ok, verify, md5)
    x_train = np.concatenate([parts[f][0] for f in CIFAR10_TRAIN_FILES])
    y_train = np.concatenate([parts[f][1] for f in CIFAR10_TRAIN_FILES])
    x_test, y_test = parts[CIFAR10_TEST_FILE]
    return make_bundle(
        "cifar10",
        to_nchw_float(x_train),
        y_train,
        to_nchw_float(x_test),
        torch.from_numpy(y_test),
        num_classes=10 if num_classes is None else num_classes,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=True,
        classes=list(CIFAR10_CLASSES),
    )
