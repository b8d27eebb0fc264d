"""Data root, download and archive checks (urllib only), each failure one DataError line.

An archive on disk is judged in two ways that must not be confused: a file whose MD5 is not
the official one but that reads through completely may be a valid repack (the user accepts
it with --no-verify), while a file that does not read through is truncated or not an
archive at all (the user deletes it and downloads again).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

from normnas.errors import DataError

# What reading a damaged gzip/tar file can raise (gzip.BadGzipFile is an OSError).
READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, OSError)
PART = ".part-"  # a download in progress: <name>.part-<pid>, renamed when complete
NO_VERIFY_HINT = "pass --no-verify (verify=False)"


def default_root() -> Path:
    """Data root when none is given: $NORMNAS_DATA or ~/.cache/normnas/data."""
    return Path(os.environ.get("NORMNAS_DATA", Path.home() / ".cache" / "normnas" / "data"))


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def reason(e: BaseException) -> str:
    """A short, one-line description of an exception (no traceback, no chained cause)."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return reason(e.reason) if isinstance(e.reason, BaseException) else str(e.reason)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = " ".join(str(e).split())
    module = type(e).__module__.lstrip("_")  # _pickle.UnpicklingError -> pickle.Unpickling...
    name = type(e).__qualname__ if module == "builtins" else f"{module}.{type(e).__qualname__}"
    return f"{name}: {text}" if text else name


def prepare_root(root: Path, create: bool = False) -> Path:
    """`root` as a folder: DataError if it is a file, or (with `create`) cannot be made."""
    if root.exists() and not root.is_dir():
        raise DataError(
            f"{root}: the data root is a file, not a folder; "
            "pass --data-root (root=) the folder that holds the data"
        )
    if create and not root.is_dir():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(
                f"{root}: cannot create the data root ({reason(e)}); "
                "pass --data-root (root=) a writable folder"
            ) from None
    return root


def check_writable(root: Path) -> None:
    """DataError (one line) unless a file can be created in `root`.

    Tried for real rather than with os.access, which says yes to root on a read-only mount.
    """
    prepare_root(root, create=True)
    try:
        fd, probe = tempfile.mkstemp(dir=root, prefix=".normnas-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataError(
            f"{root}: the data root is not writable ({reason(e)}); "
            "pass --data-root (root=) a writable folder"
        ) from None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def remove_stale(folder: Path, prefix: str) -> None:
    """Delete `<prefix><pid>` leftovers of killed processes in `folder`.

    A live process's temporary (another worker extracting right now) is left alone; so is
    anything that cannot be removed: these are ignored by every loader anyway.
    """
    if not folder.is_dir():
        return
    for p in folder.glob(f"{prefix}*"):
        tail = p.name[len(prefix) :]
        if tail.isdigit() and (int(tail) == os.getpid() or pid_alive(int(tail))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def download(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` through `dest.part-<pid>`, renamed only when complete.

    No checksum here: the caller judges the file like any archive found on disk, so a
    truncated transfer and a changed upstream file get their distinct messages.
    """
    check_writable(dest.parent)
    remove_stale(dest.parent, dest.name + PART)
    part = dest.with_name(f"{dest.name}{PART}{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        raise DataError(
            f"{dest.name} not found in {dest.parent} and the download from {url} failed "
            f"({reason(e)}); place the official archive {dest.name} there, or pass --data-root"
        ) from None
    except BaseException:  # Ctrl-C: no half file left behind
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def truncated_error(path: Path, kind: str, url: str, e: BaseException) -> DataError:
    """The error for an archive that does not read through."""
    if isinstance(e, PermissionError):
        return DataError(f"{path}: cannot read the file ({reason(e)})")
    return DataError(
        f"{path}: truncated or not a {kind} ({reason(e)}); "
        f"delete it and download it again (official URL {url})"
    )


def check_archive(
    path: Path,
    md5: str,
    verify: bool,
    url: str,
    read_through: Callable[[Path], None],
    kind: str,
) -> None:
    """Accept `path` if its MD5 is the official one; otherwise tell truncation from a repack.

    With `verify` off nothing is checked here: reading the file later raises the truncation
    error itself, and reading it twice would double the cost.
    """
    if not verify:
        return
    got = md5sum(path)
    if got == md5:
        return
    try:
        read_through(path)
    except READ_ERRORS as e:
        raise truncated_error(path, kind, url, e) from None
    raise DataError(
        f"{path}: MD5 {got} differs from the official {md5}; the file reads through as a "
        f"complete {kind}, so it may be a valid repack of the same data: to accept it, "
        f"{NO_VERIFY_HINT}"
    )


def read_gzip_through(path: Path) -> None:
    """Decompress all of a gzip file (its CRC and length trailer are checked at the end)."""
    with gzip.open(path, "rb") as g:
        while g.read(1 << 20):
            pass


def read_tar_gz_through(path: Path) -> None:
    """A complete gzip stream holding a readable tar (member headers parsed)."""
    read_gzip_through(path)
    with tarfile.open(path, "r:gz") as tar:
        tar.getmembers()
