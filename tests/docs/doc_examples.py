"""Every ```python and ```bash block of README.md and docs/**/*.md, found and run.

A page's blocks run in order in one fresh folder (files carry over, Python variables do
not); a block preceded by `<!-- doc-test: skip (reason) -->` is not run. Budgets are
shortened in the text that runs, never in the page (`shorten`); docs/contributing.md
documents the rules.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = ("python", "bash")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
SKIP = re.compile(r"^\s*<!--\s*doc-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


class DocExampleFailed(AssertionError):
    """A block exited non-zero: where it is, what ran, and the end of its output."""


def doc_pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of `page` (every language), with their skip marks.

    ValueError for a fence left open, or a skip mark without a reason in parentheses."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].lstrip().startswith("<!-- doc-test") and not SKIP.match(lines[i]):
                raise ValueError(
                    f"{page}:{i + 1}: a doc-test mark must read <!-- doc-test: skip (reason) -->"
                )
            i += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""
        ):
            line = lines[i]
            # a fence indented in a list: its lines lose that indentation, no more
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start + 1}: a code fence that is never closed")
        mark = SKIP.match(lines[start - 1]) if start > 0 else None
        out.append(
            Block(page, start + 1, match["lang"], "\n".join(body) + "\n",
                  mark["reason"].strip() if mark else None)
        )  # fmt: skip
        i += 1
    return out


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang in RUN_LANGUAGES]


# The budgets a page shows, and what the test runs instead (see docs/contributing.md).
_DURATION = r"\d+(?:\.\d+)?\s*(?:s|m|h|min)?"
SHORTER: tuple[tuple[str, str], ...] = (
    (rf"--time[ =]{_DURATION}\b", "--time 30s"),
    (rf"\btime=(['\"]){_DURATION}\1", 'time="30s"'),
    (rf"(?m)^(\s*)time:[ \t]*{_DURATION}[ \t]*$", r"\1time: 30s"),
    (r"--trials[ =]\d+", "--trials 2"),
    (r"\btrials=\d+", "trials=2"),
    (r"(?m)^(\s*)trials:[ \t]*\d+[ \t]*$", r"\1trials: 2"),
    (r"--(search-)?epochs[ =]\d+", r"--\1epochs 1"),
    (r"\bepochs=\d+", "epochs=1"),
    (r"([\"'])epochs\1:\s*\d+", r'\1epochs\1: 1'),
    (r"(?m)^(\s*)epochs:[ \t]*\d+[ \t]*$", r"\1epochs: 1"),
    (r"--generations[ =]\d+", "--generations 1"),
    (r"\bgenerations=\d+", "generations=1"),
    (r"--population-size[ =]\d+", "--population-size 2"),
    (r"\bpopulation_size=\d+", "population_size=2"),
    (r"--runs[ =]\d+", "--runs 2"),
    (r"(?<=\s)-r\s+\d+", "-r 2"),
    (r"--seeds[ =]\d+", "--seeds 2"),
    (r"(?m)^(\s*)seeds:[ \t]*\d+[ \t]*$", r"\1seeds: 2"),
    (r"--proxy-warmup[ =]\d+", "--proxy-warmup 4"),
    (r"\b(proxy|bn-indicator|supernet):\d+", r"\1:4"),
    (r"\btrain:\d+", "train:2"),
    (r"--data[ =](?:cifar10|mnist|fashion-mnist)\b", "--data digits"),
    (r"(?m)^(\s*)pip install\b", r"\1: pip install"),  # the test extras are installed
)


def shorten(code: str) -> str:
    for pattern, replacement in SHORTER:
        code = re.sub(pattern, replacement, code)
    return code


def environment() -> dict[str, str]:
    """The command's venv first on PATH (the installed `normnas`), one thread, 80 columns."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(NORMNAS_DOC_TEST="1", COLUMNS="80", OMP_NUM_THREADS="1", NORMNAS_THREADS="1")
    env.pop("PYTHONPATH", None)  # the installed package, not a source tree
    return env


def run_block(block: Block, folder: Path, env: dict[str, str] | None = None) -> str:
    """Run `block` (shortened) in `folder`; its output, or DocExampleFailed."""
    code = shorten(block.code)
    command = (
        [sys.executable, "-c", code]
        if block.lang == "python"
        else ["bash", "-e", "-o", "pipefail", "-c", code]
    )
    try:
        done = subprocess.run(
            command, cwd=folder, env=env or environment(), capture_output=True, text=True,
            timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DocExampleFailed(
            f"{block.where}: ran past {BLOCK_TIMEOUT_S}s\n{code}"
        ) from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise DocExampleFailed(
            f"{block.where}: the {block.lang} block exited {done.returncode}\n"
            f"--- as run ---\n{code}--- output (end) ---\n{output[-3000:]}"
        )
    return output


def run_page(page: Path, folder: Path) -> Iterator[Block]:
    """Run the page's runnable blocks in order in `folder`; yields each block it ran."""
    env = environment()
    for block in runnable(page):
        if block.skip is None:
            run_block(block, folder, env)
            yield block


def run_all(pages: Iterable[Path], folder: Path) -> list[Block]:
    ran: list[Block] = []
    for page in pages:
        ran.extend(run_page(page, folder))
    return ran
