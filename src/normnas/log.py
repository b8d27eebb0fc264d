"""The `normnas` logger: what the Python API says while it runs (as Optuna logs its trials).

On first use it is set to INFO (unless its level was set) and gets a stderr handler unless
the application configured the `normnas` logger or the root logger itself (then records go
there). `normnas.search(verbose=False)` says nothing.
"""

from __future__ import annotations

import logging
import sys

NAME = "normnas"
_handler: logging.Handler | None = None


def get_logger() -> logging.Logger:
    """The `normnas` logger, with the default handler added the first time (see module doc)."""
    global _handler
    logger = logging.getLogger(NAME)
    if _handler is None and not logger.handlers and not logging.getLogger().handlers:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("[normnas %(levelname)s] %(message)s"))
        logger.addHandler(_handler)
    if logger.level == logging.NOTSET:  # INFO by default, as Optuna's; a set level is kept
        logger.setLevel(logging.INFO)
    return logger
