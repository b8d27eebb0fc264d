"""Words for the output: a count with its noun in the right number."""

from __future__ import annotations


def plural(n: float | str, word: str, many: str | None = None) -> str:
    """`n` and `word`, the noun in the plural unless n is 1: "1 trial", "3 trials", "0 trials"
    (and "? trials" for a count not known, given as a string).

    `many` is the plural where adding "s" is wrong ("1 study", "2 studies")."""
    shown = f"{n:g}" if isinstance(n, float) else str(n)
    return f"{shown} {word if n == 1 else (many or word + 's')}"
