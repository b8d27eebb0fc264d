"""Download and checksum helpers (urllib only), with one-line errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path


def default_root() -> Path:
    """Data root when none is given: $NORMNAS_DATA or ~/.cache/normnas/data."""
    return Path(os.environ.get("NORMNAS_DATA", Path.home() / ".cache" / "normnas" / "data"))


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_md5(path: Path, expected: str | None) -> None:
    """ValueError naming the file if its MD5 is not `expected` (None skips the check)."""
    if expected is None:
        return
    got = md5sum(path)
    if got != expected:
        raise ValueError(
            f"{path}: MD5 mismatch (expected {expected}, got {got}); "
            "the file is corrupt or incomplete: delete it and load again"
        )


def download(url: str, dest: Path, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` (via a .part file), then check its MD5."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f)
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise RuntimeError(
            f"download of {url} failed ({e}); check the network, or place {dest.name} "
            f"in {dest.parent} yourself"
        ) from e
    part.replace(dest)
    check_md5(dest, md5)
    return dest
