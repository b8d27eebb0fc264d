"""CIFAR-10 through the real verify/extract/read path on a tiny archive in the official format."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from normnas.data import cifar, load
from normnas.errors import DataError

PER_BATCH = 20


def _write_batches(folder: Path, rng: np.random.Generator, skip: str | None = None) -> dict:
    folder.mkdir(parents=True)
    written = {}
    for name in (*cifar.CIFAR10_TRAIN_FILES, cifar.CIFAR10_TEST_FILE):
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(PER_BATCH)]
        written[name] = (data, labels)
        if name == skip:
            continue
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f)
    return written


def _archive(tmp_path: Path, skip: str | None = None) -> tuple[Path, dict, str]:
    """root/cifar-10-python.tar.gz holding cifar-10-batches-py/ (no extracted folder)."""
    src = tmp_path / "src"
    written = _write_batches(src / cifar.CIFAR10_FOLDER, np.random.default_rng(0), skip)
    root = tmp_path / "root"
    root.mkdir()
    archive = root / cifar.CIFAR10_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / cifar.CIFAR10_FOLDER, arcname=cifar.CIFAR10_FOLDER)
    return root, written, hashlib.md5(archive.read_bytes()).hexdigest()


def test_reads_the_official_layout_from_the_archive(tmp_path, monkeypatch) -> None:
    root, written, md5 = _archive(tmp_path)
    monkeypatch.setattr(cifar, "CIFAR10_MD5", md5)
    b = load("cifar10", root=root, download=False, valid_fraction=0.1)
    assert (root / cifar.CIFAR10_FOLDER / "data_batch_5").is_file()  # extracted under root
    assert (b.num_classes, b.in_channels, b.image_size) == (10, 3, (32, 32))
    assert len(b.train) + len(b.valid) == 5 * PER_BATCH and len(b.test) == PER_BATCH
    assert b.train.augment and not b.valid.augment and not b.test.augment
    # test split keeps file order: undo the normalization and compare pixel by pixel;
    # each row of b"data" is 1024 red, 1024 green, 1024 blue values, row-major
    data, labels = written["test_batch"]
    mean = torch.tensor(b.mean)[None, :, None, None]
    std = torch.tensor(b.std)[None, :, None, None]
    pixels = (b.test.x * std + mean) * 255
    expected = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32))
    assert torch.allclose(pixels, expected, atol=1e-3)
    assert b.test.y.tolist() == labels
    # train statistics only: mean of train pixels, not of test pixels
    assert np.allclose(b.mean, (b.train.x * std + mean).mean((0, 2, 3)).numpy(), atol=1e-5)


def test_accepts_an_extracted_folder_without_archive(tmp_path) -> None:
    folder = tmp_path / cifar.CIFAR10_FOLDER
    _write_batches(folder, np.random.default_rng(1))
    for root in (tmp_path, folder):
        b = load("cifar10", root=root, download=False)
        assert len(b.test) == PER_BATCH


def test_wrong_checksum_is_a_clear_error(tmp_path) -> None:
    root, _, _ = _archive(tmp_path)  # expected MD5 stays the official one
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: MD5 \w+ differs from the"):
        load("cifar10", root=root, download=False)
    assert not (root / cifar.CIFAR10_FOLDER).exists()  # nothing extracted from a bad file


def test_missing_batch_names_the_file(tmp_path, monkeypatch) -> None:
    root, _, md5 = _archive(tmp_path, skip="data_batch_3")
    monkeypatch.setattr(cifar, "CIFAR10_MD5", md5)
    with pytest.raises(DataError, match=r"data_batch_3 \(missing\)"):
        load("cifar10", root=root, download=False)


def test_corrupt_batch_names_the_file(tmp_path) -> None:
    folder = tmp_path / cifar.CIFAR10_FOLDER
    _write_batches(folder, np.random.default_rng(2))
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"data_batch_2 \(not a CIFAR-10 batch"):
        load("cifar10", root=tmp_path, download=False)


def test_nothing_there_without_download(tmp_path) -> None:
    with pytest.raises(DataError, match=r"downloads are off \(download=False\)"):
        load("cifar10", root=tmp_path, download=False)


def test_network_failure_is_a_clear_error(tmp_path, monkeypatch) -> None:
    # a file:// URL that does not exist fails inside urllib exactly like a dead network
    monkeypatch.setattr(cifar, "CIFAR10_URL", (tmp_path / "nowhere.tar.gz").as_uri())
    with pytest.raises(DataError, match=r"the download from file:.* failed"):
        load("cifar10", root=tmp_path / "root", download=True)
    assert not list((tmp_path / "root").glob("*.part*"))


def test_download_then_verify_then_extract(tmp_path, monkeypatch) -> None:
    served, _, md5 = _archive(tmp_path / "server")
    monkeypatch.setattr(cifar, "CIFAR10_URL", (served / cifar.CIFAR10_ARCHIVE).as_uri())
    monkeypatch.setattr(cifar, "CIFAR10_MD5", md5)
    b = load("cifar10", root=tmp_path / "root", download=True)
    assert (tmp_path / "root" / cifar.CIFAR10_ARCHIVE).is_file()
    assert len(b.test) == PER_BATCH


def test_a_batch_naming_any_other_callable_is_refused_without_running_it(tmp_path):
    import pickle

    from normnas.data.cifar import read_batch
    from normnas.errors import DataError

    ran = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (ran.touch, ())

    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"data_batch_{protocol}"
        path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=protocol))
        with pytest.raises(DataError, match="is not allowed in a CIFAR-10 batch"):
            read_batch(path)
        assert not ran.exists()
    good = tmp_path / "good"
    data = np.zeros((2, 3072), np.uint8)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        good.write_bytes(pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=protocol))
        x, y = read_batch(good)
        assert x.shape == (2, 32, 32, 3) and y.tolist() == [1, 2]
