"""normnas: neural architecture search on PyTorch where normalization is a design choice."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("normnas")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> object:  # lazy: keeps `import normnas` light
    if name in ("search", "slim"):  # packages callable as the API: normnas.search(...)
        import importlib

        return importlib.import_module(f"normnas.{name}")
    if name == "load_model":  # normnas.load_model(path): a saved checkpoint, ready to predict
        from normnas.export.loading import load_model

        return load_model
    raise AttributeError(f"module 'normnas' has no attribute {name!r}")
