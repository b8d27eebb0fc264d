"""Bad data in every way a user meets it: repacks, truncation, killed extractions, no network,
damaged npz files, values and labels no trial can use, impossible splits, bare paths."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from normnas.data import DataWarning, cifar, idx, load
from normnas.errors import DataError

PER_BATCH = 20


def _closed_port_url() -> str:
    """http://127.0.0.1:<port>/ where nothing listens: a port just bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


UNREACHABLE = _closed_port_url()  # connecting is refused: a real failed download


# ---------------------------------------------------------------- CIFAR-10 archives


def _batches(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """The six official-format pickled batches (PER_BATCH images each) in `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for name in cifar.CIFAR10_FILES:
        data[name] = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(PER_BATCH)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data[name], b"labels": labels}, f)
    return data


def _tar(src: Path, archive: Path, compresslevel: int = 9) -> str:
    """Pack src/cifar-10-batches-py into `archive`; its MD5."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz", compresslevel=compresslevel) as tar:
        tar.add(src / cifar.CIFAR10_FOLDER, arcname=cifar.CIFAR10_FOLDER)
    return hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict, Path]:
    """(root, batches, src): root holds an archive that is 'official' (its MD5 trusted);
    the download URL is unreachable, so any download attempt fails loudly."""
    src = tmp_path / "src"
    batches = _batches(src / cifar.CIFAR10_FOLDER)
    root = tmp_path / "root"
    monkeypatch.setattr(cifar, "CIFAR10_MD5", _tar(src, root / cifar.CIFAR10_ARCHIVE))
    monkeypatch.setattr(cifar, "CIFAR10_URL", UNREACHABLE + cifar.CIFAR10_ARCHIVE)
    return root, batches, src


def _test_pixels(b) -> torch.Tensor:
    """The test split back in 0..255 as (N, 3072) rows, the official pickle layout."""
    mean = torch.tensor(b.mean)[None, :, None, None]
    std = torch.tensor(b.std)[None, :, None, None]
    return ((b.test.x * std + mean) * 255).reshape(len(b.test), -1)


def _same_pixels(b, rows: np.ndarray) -> bool:
    return torch.allclose(_test_pixels(b), torch.from_numpy(rows).float(), atol=1e-3)


def test_repack_is_refused_with_the_no_verify_hint_and_accepted_without(official) -> None:
    root, batches, src = official
    archive = root / cifar.CIFAR10_ARCHIVE
    # the same batches packed with another compression level: other bytes, other MD5
    _tar(src, archive, compresslevel=1)
    before = archive.read_bytes()
    with pytest.raises(DataError) as e:
        load("cifar10", root=root)  # download=True: still must not fetch an existing archive
    msg = str(e.value)
    assert msg.startswith(f"{archive}: MD5 {hashlib.md5(before).hexdigest()} differs from")
    assert cifar.CIFAR10_MD5 in msg and "may be a valid repack" in msg
    assert "pass --no-verify (verify=False)" in msg
    assert "delete" not in msg.lower() and "download" not in msg.lower()
    assert archive.read_bytes() == before and not (root / cifar.CIFAR10_FOLDER).exists()
    b = load("cifar10", root=root, verify=False)
    assert _same_pixels(b, batches["test_batch"])


def test_truncated_archive_is_its_own_error(official) -> None:
    root, _, _ = official
    archive = root / cifar.CIFAR10_ARCHIVE
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    for verify in (True, False):  # by the checksum path and by the extraction path
        with pytest.raises(DataError) as e:
            load("cifar10", root=root, verify=verify)
        msg = str(e.value)
        assert msg.startswith(f"{archive}: truncated or not a gzip tar archive (")
        assert f"delete it and download it again (official URL {cifar.CIFAR10_URL})" in msg
        assert "--no-verify" not in msg and "\n" not in msg
        assert e.value.__cause__ is None and e.value.__suppress_context__
    assert sorted(p.name for p in root.iterdir()) == [cifar.CIFAR10_ARCHIVE]  # no partial left


def test_not_a_gzip_at_all(official) -> None:
    root, _, _ = official
    (root / cifar.CIFAR10_ARCHIVE).write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match=r"truncated or not a gzip tar archive \(.*gzip"):
        load("cifar10", root=root)


def _dead_pid() -> int:
    """The id of a process that has just exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_interrupted_extraction_is_redone_from_the_archive(official) -> None:
    root, batches, src = official
    folder = root / cifar.CIFAR10_FOLDER
    _batches(folder, seed=9)  # a killed (old, non-atomic) extraction: some files, one cut short
    for name in ("data_batch_4", "data_batch_5", "test_batch"):
        (folder / name).unlink()
    cut = folder / "data_batch_3"
    cut.write_bytes(cut.read_bytes()[:5000])
    dead = root / f"{cifar.PARTIAL}{_dead_pid()}"  # leftover of a killed new-style extraction
    (dead / cifar.CIFAR10_FOLDER).mkdir(parents=True)
    (dead / cifar.CIFAR10_FOLDER / "data_batch_1").write_bytes(b"half")
    live = root / f"{cifar.PARTIAL}{os.getppid()}"  # another process extracting right now
    live.mkdir()
    b = load("cifar10", root=root)
    assert _same_pixels(b, batches["test_batch"])  # the archive's data, not the leftovers'
    assert len(b.train) + len(b.valid) == 5 * PER_BATCH
    for name in cifar.CIFAR10_FILES:
        assert (folder / name).read_bytes() == (src / folder.name / name).read_bytes()
    assert not dead.exists() and live.is_dir()
    assert not list(root.glob(f"{cifar.OLD}*"))
    # the folder is now trusted as it is: the archive is no longer needed
    (root / cifar.CIFAR10_ARCHIVE).unlink()
    assert _same_pixels(load("cifar10", root=root, download=False), batches["test_batch"])


def test_incomplete_folder_without_archive_names_every_file(tmp_path: Path) -> None:
    folder = tmp_path / cifar.CIFAR10_FOLDER
    _batches(folder)
    (folder / "data_batch_1").unlink()
    (folder / "data_batch_4").unlink()
    (folder / "test_batch").write_bytes(b"")
    cut = folder / "data_batch_2"
    cut.write_bytes(cut.read_bytes()[:1000])
    for root in (tmp_path, folder):  # the root, or the extracted folder itself
        with pytest.raises(DataError) as e:
            load("cifar10", root=root)
        msg = str(e.value)
        assert msg.startswith(f"{folder}: incomplete CIFAR-10 folder: ")
        for part in (
            "data_batch_1 (missing)",
            "data_batch_4 (missing)",
            "test_batch (empty)",
            "data_batch_2 (not a CIFAR-10 batch",
            "1000 bytes, official 31035320",
        ):
            assert part in msg
        for fine in ("data_batch_3", "data_batch_5"):
            assert fine not in msg
        assert f"{cifar.CIFAR10_ARCHIVE} ({cifar.CIFAR10_URL}) in {tmp_path}" in msg


def test_root_that_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "data.txt"
    root.write_text("not a folder")
    for name in ("cifar10", "mnist"):
        with pytest.raises(DataError) as e:
            load(name, root=root)
        assert str(e.value).startswith(f"{root}: the data root is a file, not a folder;")
        assert "\n" not in str(e.value)


def test_root_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    root = tmp_path / "file" / "data"  # under a file: mkdir fails for every user
    with pytest.raises(DataError, match=r"data: cannot create the data root \(Not a directory\)"):
        load("cifar10", root=root)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_root(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(DataError, match=r"ro: the data root is not writable"):
            load("cifar10", root=root)
    finally:
        root.chmod(0o700)


def _offline_message(e: pytest.ExceptionInfo, archive: str, folder: Path, url: str) -> None:
    msg = str(e.value)
    assert msg == (
        f"{archive} not found in {folder} and the download from {url} failed "
        f"(Connection refused); place the official archive {archive} there, or pass --data-root"
    )
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no chained traceback


def test_offline_cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = UNREACHABLE + cifar.CIFAR10_ARCHIVE
    monkeypatch.setattr(cifar, "CIFAR10_URL", url)
    root = tmp_path / "root"
    with pytest.raises(DataError) as e:
        load("cifar10", root=root)
    _offline_message(e, cifar.CIFAR10_ARCHIVE, root, url)
    assert list(root.iterdir()) == []  # no .part file left


def test_offline_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(idx.IDX_SOURCES["mnist"], "url", UNREACHABLE)
    with pytest.raises(DataError) as e:
        load("mnist", root=tmp_path)
    name = idx.IDX_FILES["train_images"]
    _offline_message(e, name, tmp_path / "mnist", UNREACHABLE + name)


# ---------------------------------------------------------------- MNIST gzip files


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _mnist(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Four tiny IDX gzip files whose MD5s are made the 'official' ones."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    arrays = {
        "train_images": rng.integers(0, 256, (100, 5, 5), dtype=np.uint8),
        "train_labels": np.arange(100, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (10, 5, 5), dtype=np.uint8),
        "test_labels": np.arange(10, dtype=np.uint8),
    }
    md5 = {}
    for key, arr in arrays.items():
        path = folder / idx.IDX_FILES[key]
        path.write_bytes(gzip.compress(_idx_bytes(arr), mtime=0))
        md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(idx.IDX_SOURCES["mnist"], "md5", md5)
    monkeypatch.setitem(idx.IDX_SOURCES["mnist"], "url", UNREACHABLE)
    return arrays


def test_mnist_repack_and_truncation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = _mnist(tmp_path / "mnist", monkeypatch)
    labels = tmp_path / "mnist" / idx.IDX_FILES["test_labels"]
    labels.write_bytes(gzip.compress(_idx_bytes(arrays["test_labels"]), compresslevel=1, mtime=7))
    with pytest.raises(DataError) as e:
        load("mnist", root=tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{labels}: MD5 ") and "may be a valid repack" in msg
    assert "pass --no-verify (verify=False)" in msg
    b = load("mnist", root=tmp_path, verify=False)
    assert b.test.y.tolist() == list(range(10))
    images = tmp_path / "mnist" / idx.IDX_FILES["train_images"]
    images.write_bytes(images.read_bytes()[:-30])  # cut inside the deflate stream
    for verify in (True, False):
        with pytest.raises(DataError) as e:
            load("mnist", root=tmp_path, verify=verify)
        assert str(e.value).startswith(f"{images}: truncated or not a gzip file (")
        assert f"download it again (official URL {UNREACHABLE}{images.name})" in str(e.value)


def test_mnist_missing_files_are_all_named(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load("mnist", root=tmp_path, download=False)
    for name in idx.IDX_FILES.values():
        assert name in str(e.value)
    assert "download=False" in str(e.value)


# ---------------------------------------------------------------- npz files


def _npz(path: Path, n: int = 60, k: int = 3, compressed: bool = True, **extra) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x": rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8), "y": np.arange(n) % k}
    arrays.update(extra)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _member_data_start(raw: bytes) -> int:
    """Offset of the first zip member's data: after its 30-byte local header, name, extra."""
    name_len = int.from_bytes(raw[26:28], "little")
    extra_len = int.from_bytes(raw[28:30], "little")
    return 30 + name_len + extra_len


def _damage(raw: bytes, how: str) -> bytes:
    start = _member_data_start(raw)
    b = bytearray(raw)
    if how == "truncated":
        return raw[: len(raw) // 2]
    if how == "crc":
        b[start + 400] ^= 0x01  # one pixel bit: inflates fine, checksum fails
    elif how == "deflate":
        b[start] |= 0b110  # block type 3 is reserved: the deflate stream is invalid
    elif how == "garbage":
        return np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    return bytes(b)


@pytest.mark.parametrize(
    ("how", "detail"),
    [
        ("truncated", "zipfile.BadZipFile: File is not a zip file"),
        ("crc", "array 'x': zipfile.BadZipFile: Bad CRC-32 for file 'x.npy'"),
        ("deflate", "array 'x': zlib.error: Error -3 while decompressing data"),
        ("garbage", "neither a zip archive of .npy arrays nor an .npy array"),
    ],
)
def test_unreadable_npz(tmp_path: Path, how: str, detail: str) -> None:
    path = _npz(tmp_path / "d.npz")
    path.write_bytes(_damage(path.read_bytes(), how))
    with pytest.raises(DataError) as e:
        load(f"npz:{path}")
    assert str(e.value).startswith(f"{path}: not a readable .npz file ({detail}")
    assert "pickle" not in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_npz_with_nan_pixels(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 4, 4, 1)).astype(np.float32)
    x[3, 0, 0, 0] = x[7, 1, 2, 0] = np.nan
    x[9, 3, 3, 0] = -np.inf
    path = tmp_path / "nan.npz"
    np.savez(path, x=x, y=np.arange(40) % 2)
    with pytest.raises(DataError, match=r"nan\.npz x: 3 of 640 pixel values are NaN or infinite"):
        load(str(path))


def test_npz_with_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 4, 4, 1), np.uint8), y=np.zeros(0, np.int64))
    with pytest.raises(DataError, match=r"empty\.npz x: 0 samples"):
        load(f"npz:{path}")


def test_labels_far_beyond_the_classes(tmp_path: Path) -> None:
    y = np.array([0, 1, 1000] * 20)
    path = _npz(tmp_path / "far.npz", y=y)
    with pytest.raises(DataError) as e:
        load(str(path))
    assert str(e.value) == (
        f"{path}: max label 1000 but only 3 distinct labels (0, 1, 1000); pass num_classes "
        "or relabel them 0..K-1 (labels are refused when max label + 1 > 2 x the number of "
        "distinct labels)"
    )
    assert load(str(path), num_classes=1001).num_classes == 1001
    # the rule's boundary: {0, 1, 5} needs 6 outputs for 3 labels (6 > 6 is false): loads
    assert load(str(_npz(tmp_path / "edge.npz", y=np.array([0, 1, 5] * 20)))).num_classes == 6
    with pytest.raises(DataError, match="max label 6 but only 3"):
        load(str(_npz(tmp_path / "over.npz", y=np.array([0, 1, 6] * 20))))


def test_single_class_and_tiny_class_warn(tmp_path: Path) -> None:
    with pytest.warns(DataWarning, match=r"every training sample has label 0 \(a single class\)"):
        b = load(str(_npz(tmp_path / "one.npz", k=1)))
    assert b.num_classes == 1
    y = np.array([0] * 30 + [1] * 30 + [2] * 7)
    with pytest.warns(DataWarning, match=r"1 of 3 classes have fewer than 10 .*\(class 2: 7\)"):
        load(str(_npz(tmp_path / "tiny.npz", n=67, y=y)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # 20 per class: nothing to say
        load(str(_npz(tmp_path / "fine.npz")))


def test_valid_fraction_too_large_is_ours_not_sklearns(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", n=30, k=3)  # 24 left for train+valid after the 20% test
    with pytest.raises(DataError) as e:
        load(str(path), valid_fraction=0.99)
    assert str(e.value) == (
        f"npz:{path}: valid_fraction=0.99 holds out 24 of the 24 training samples and "
        "leaves 0, fewer than 1 per class (3 classes); lower valid_fraction"
    )
    with pytest.raises(DataError, match=r"valid_fraction=0\.9 holds out 22 of the 24 .* leaves 2"):
        load(str(path), valid_fraction=0.9)
    assert len(load(str(path), valid_fraction=0.8).train) == 4  # 24 - ceil(19.2): still 1/class
    tiny = _npz(tmp_path / "tiny.npz", n=3, k=3)  # the test split alone leaves 2 for 3 classes
    with pytest.raises(DataError, match=r"3 samples are too few to hold out the fixed 20% test"):
        load(str(tiny))


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_out_of_range_seed(tmp_path: Path, seed) -> None:
    path = _npz(tmp_path / "d.npz")
    with pytest.raises(DataError, match=r"seed must be an integer in 0\.\.4294967295"):
        load(str(path), seed=seed)


def test_largest_seed_is_accepted(tmp_path: Path) -> None:
    assert len(load(str(_npz(tmp_path / "d.npz")), seed=2**32 - 1).test) == 12


# ---------------------------------------------------------------- bare paths


def test_bare_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _npz(tmp_path / "d.npz")
    a, b = load(str(path)), load(f"npz:{path}")
    assert a.name == b.name == f"npz:{path}" and torch.equal(a.train.x, b.train.x)
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "pics" / c).mkdir(parents=True)
        for i in range(10):
            arr = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
            Image.fromarray(arr, mode="RGB").save(tmp_path / "pics" / c / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    f = load("pics")  # relative, as typed after --data
    assert f.name == "folder:pics" and f.classes == ["cat", "dog"] and f.in_channels == 3
    with pytest.raises(DataError) as e:
        load("pics/missing.npz")
    assert str(e.value) == (
        "unknown data set 'pics/missing.npz'; valid names: digits, cifar10, mnist, "
        "fashion-mnist, npz:PATH, folder:PATH, ucr:NAME, or the path of an .npz file or image "
        "folder (a path must exist)"
    )


def test_npz_prefix_on_a_folder_and_folder_prefix_on_a_file(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz")
    with pytest.raises(DataError, match=r"a folder, not an \.npz file \(for images use folder:"):
        load(f"npz:{tmp_path}")
    with pytest.raises(DataError, match=r"a file, not an image folder \(for arrays use npz:"):
        load(f"folder:{path}")
