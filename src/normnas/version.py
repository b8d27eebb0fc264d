"""The installed version, in a module of its own so any layer can read it without importing the
package root (whose lazy API names reach up to export/ and search/)."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("normnas")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
