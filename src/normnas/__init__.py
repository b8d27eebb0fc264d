"""normnas: neural architecture search on PyTorch where normalization is a design choice."""

from __future__ import annotations

from normnas.version import __version__

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> object:  # lazy: keeps `import normnas` light
    if name in ("search", "slim"):  # packages callable as the API: normnas.search(...)
        import importlib

        return importlib.import_module(f"normnas.{name}")
    if name == "load_model":  # normnas.load_model(path): a saved checkpoint, ready to predict
        from normnas.export.loading import load_model

        return load_model
    raise AttributeError(f"module 'normnas' has no attribute {name!r}")
