"""MNIST / Fashion-MNIST through the real IDX reader on tiny gzip files."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from normnas.data import idx, load
from normnas.errors import DataError


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write(folder: Path, n_train: int = 30, n_test: int = 10, size: int = 6) -> dict:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for key, arr in arrays.items():
        (folder / idx.IDX_FILES[key]).write_bytes(gzip.compress(_idx_bytes(arr)))
    return arrays


def _trust(monkeypatch, name: str, folder: Path) -> None:
    """Replace the official MD5s by those of the tiny files."""
    md5 = {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in idx.IDX_FILES.values()}
    monkeypatch.setitem(idx.IDX_SOURCES[name], "md5", md5)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_reads_idx_files(tmp_path, monkeypatch, name) -> None:
    arrays = _write(tmp_path / name)
    _trust(monkeypatch, name, tmp_path / name)
    b = load(name, root=tmp_path, download=False)
    assert (b.num_classes, b.in_channels, b.image_size) == (10, 1, (6, 6))
    assert len(b.train) + len(b.valid) == 30 and len(b.test) == 10
    assert not b.train.augment  # flipping digits would change them
    pixels = (b.test.x * b.std[0] + b.mean[0]) * 255
    assert torch.allclose(pixels[:, 0], torch.from_numpy(arrays["test_images"]).float(), atol=1e-3)
    assert b.test.y.tolist() == arrays["test_labels"].tolist()


def test_wrong_checksum_names_the_file(tmp_path) -> None:
    _write(tmp_path / "mnist")  # official MD5s kept: the tiny files cannot match
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: MD5 \w+ differs"):
        load("mnist", root=tmp_path, download=False)


def test_bad_magic_number(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "mnist"
    _write(folder)
    bad = bytes([0, 0, 0x0D, 3]) + (1).to_bytes(4, "big") * 3 + b"\0\0\0\0"  # float, not ubyte
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bad))
    _trust(monkeypatch, "mnist", folder)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: bad IDX magic number"):
        load("mnist", root=tmp_path, download=False)


def test_labels_given_as_images_is_a_magic_error(tmp_path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros((2, 3, 3), np.uint8))))
    with pytest.raises(ValueError, match="expected 0x00000801"):
        idx.read_idx(path, 1)


def test_truncated_file_and_count_mismatch(tmp_path, monkeypatch) -> None:
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros((4, 3, 3), np.uint8))[:-5]))
    with pytest.raises(ValueError, match="size mismatch"):
        idx.read_idx(path, 3)
    folder = tmp_path / "mnist"
    _write(folder)
    labels = np.zeros(7, dtype=np.uint8)  # 7 labels for 10 test images
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    _trust(monkeypatch, "mnist", folder)
    with pytest.raises(ValueError, match="7 labels for 10 images"):
        load("mnist", root=tmp_path, download=False)


def test_missing_file_without_download(tmp_path) -> None:
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.* not found in"):
        load("fashion-mnist", root=tmp_path, download=False)
