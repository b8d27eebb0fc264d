"""Every Python and shell example of README.md and docs/ runs (`make docs`; minutes).

One test per page: its blocks run in order in a fresh temporary folder, against the
installed `normnas` (see doc_examples and docs/contributing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .doc_examples import ROOT, doc_pages, run_page, runnable

PAGES = [p for p in doc_pages() if any(b.skip is None for b in runnable(p))]


@pytest.mark.docs
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_example_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    ran = list(run_page(page, tmp_path))
    assert ran, f"{page}: no block ran"
