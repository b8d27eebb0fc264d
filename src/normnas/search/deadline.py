"""`deadline(seconds)`: stop a block of Python code when its time is up.

Why: a user's `evaluate` function is code we cannot pass a time limit to, yet `--time` is a
promise. In the main thread a real-time timer (SIGALRM) raises `TimeLimitReached` inside the
block; it derives from BaseException so that a user's `except Exception` does not swallow it.
Elsewhere (a worker thread, a platform without SIGALRM) nothing can interrupt the block:
the caller measures the time afterwards and records the overrun.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class TimeLimitReached(BaseException):
    """Raised inside a `deadline` block when its time is up."""


def can_interrupt() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[bool]:
    """Run the block with at most `seconds` (None: no limit); yields whether it can be cut."""
    if seconds is None or not can_interrupt():
        yield False
        return

    def _raise(signum: int, frame: Any) -> None:
        raise TimeLimitReached(f"time limit of {seconds:.1f}s reached")

    previous = signal.signal(signal.SIGALRM, _raise)
    outer = signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3))
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer[0] > 0:  # an enclosing timer keeps running (less the time spent here)
            signal.setitimer(signal.ITIMER_REAL, max(outer[0] - float(seconds), 1e-3))
