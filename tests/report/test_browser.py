"""The report as a person sees it: opened in headless Chromium, no console errors, every
section's figures drawn, the table script run, a screenshot taken.

Chromium is a Debian package (`make test` installs it when it can); without it these tests
are skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.report.conftest import MadeStudy
from tests.report.page import parse
from tests.support import invoke

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "headless Chromium not found (`make test` runs `apt-get install -y chromium`, which "
        "needs root and the Debian mirror): the browser tests of the HTML report are skipped"
    )


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             "--hide-scrollbars", "--window-size=1280,2400"]  # fmt: skip
    if os.geteuid() == 0:  # Chromium refuses to run as root inside its sandbox
        flags.append("--no-sandbox")
    return subprocess.run(
        [_browser(), *flags, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _open(report: Path, tmp_path: Path) -> tuple[str, list[str], Path]:
    """(DOM after the scripts ran, the console lines, a screenshot) of `report`."""
    dom = _run(["--dump-dom", report.as_uri()])
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    shot = tmp_path / "shot.png"
    done = _run([f"--screenshot={shot}", report.as_uri()])
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    return dom.stdout, console, shot


def _not_blank(png: Path) -> int:
    """The number of distinct colours of the screenshot (a blank page has one or two)."""
    from PIL import Image

    with Image.open(png) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


@pytest.mark.parametrize("which", ["digits", "nb201"])
def test_report_opens_in_chromium_with_every_figure_drawn(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    _browser()
    made: MadeStudy = request.getfixturevalue(f"{which}_study")
    out = tmp_path / "report.html"
    result = invoke(["report", "--study", made.name, "--storage", made.url, "--out", str(out)],
                    tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    dom, console, shot = _open(out, tmp_path)
    assert console == [], "console messages while loading the report:\n" + "\n".join(console)
    page = parse(dom)
    sections = [m.attrs["id"] for m in page.find("section")]
    want = ["summary", "trajectory", "choices", "trials", "best"]
    if which == "digits":
        want.insert(2, "pareto")
    assert sections == want
    for section in want[1:]:  # every section but the summary table draws at least one figure
        assert page.find("svg", "fig", section), f"no figure drawn in section {section}"
    # the table script ran: it counts the rows it shows
    n_rows = len(page.find("tr", section="trials")) - 1
    assert f"{n_rows} of {n_rows} trials" in page.text("trials")
    assert _not_blank(shot) > 50
