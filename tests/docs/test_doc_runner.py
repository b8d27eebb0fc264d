"""The doc-example runner itself: it fails on a broken block, honours skip marks, carries
files between a page's blocks, and shortens budgets only in what it runs (fast: no torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .doc_examples import (
    DocExampleFailed,
    blocks,
    doc_pages,
    run_page,
    runnable,
    shorten,
)


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_a_broken_python_block_fails_naming_the_page_and_line(tmp_path):
    page = _page(
        tmp_path,
        "# A page\n\n```python\nprint('fine')\n```\n\nthen\n\n```python\nimport math\n"
        "print(math.sqrt(-1))\n```\n",
    )
    with pytest.raises(DocExampleFailed, match=r"page\.md:9: the python block exited 1") as e:
        list(run_page(page, tmp_path))
    assert "ValueError: math domain error" in str(e.value)


def test_a_failing_command_in_a_bash_block_fails_it(tmp_path):
    page = _page(tmp_path, "```bash\necho one\nfalse\necho never\n```\n")
    with pytest.raises(DocExampleFailed, match="bash block exited 1") as e:
        list(run_page(page, tmp_path))
    assert "never" not in str(e.value).split("--- output (end) ---")[1]


def test_a_missing_command_in_a_pipe_fails_the_block(tmp_path):
    page = _page(tmp_path, "```bash\nnormnas-no-such-command --help | head -1\n```\n")
    with pytest.raises(DocExampleFailed, match="exited 127"):
        list(run_page(page, tmp_path))


def test_a_marked_block_is_skipped_and_the_rest_share_a_folder_in_order(tmp_path):
    page = _page(
        tmp_path,
        "<!-- doc-test: skip (a cluster) -->\n```bash\nexit 3\n```\n\n"
        "```python\nopen('made.txt', 'w').write('made by block 2')\n```\n\n"
        "```text\nnot run\n```\n\n"
        "1. indented, in a list:\n   ```bash\n   grep -q 'block 2' made.txt\n   ```\n",
    )
    ran = list(run_page(page, tmp_path))
    assert [b.lang for b in ran] == ["python", "bash"]
    assert ran[1].code == "grep -q 'block 2' made.txt\n"
    assert [b.skip for b in blocks(page)] == ["a cluster", None, None, None]


@pytest.mark.parametrize(
    "text", ["<!-- doc-test: skip -->\n```bash\nx\n```\n", "```python\nprint(1)\n"]
)
def test_a_mark_without_reason_or_an_open_fence_is_an_error(tmp_path, text):
    with pytest.raises(ValueError, match=r"page\.md:1: "):
        blocks(_page(tmp_path, text))


@pytest.mark.parametrize(
    ("shown", "run"),
    [
        (
            "normnas search --time 10m --epochs 5 --trials 40",
            "normnas search --time 30s --epochs 1 --trials 2",
        ),
        (
            'normnas.search(time="5m", epochs=5, trials=100)',
            'normnas.search(time="30s", epochs=1, trials=2)',
        ),
        (
            "generations=10, population_size=20",
            "generations=1, population_size=2",
        ),
        (
            "--cascade proxy:2000,bn-indicator:200,train:20",
            "--cascade proxy:4,bn-indicator:4,train:2",
        ),
        (
            "bench nb201 --runs 500 --budget 12000",
            "bench nb201 --runs 2 --budget 12000",
        ),
        (
            "--space nb201 --data cifar10 --method darts",
            "--space nb201 --data digits --method darts",
        ),
        (
            "seeds: 5\nepochs: 10\ntime: 45m\n",
            "seeds: 2\nepochs: 1\ntime: 30s\n",
        ),
        (
            'gradient={"epochs": 50, "C": 16}',
            'gradient={"epochs": 1, "C": 16}',
        ),
        (
            "pip install 'normnas[onnx]'",
            ": pip install 'normnas[onnx]'",
        ),
        (
            "normnas search --data digits --max-params 2e5",
            "normnas search --data digits --max-params 2e5",
        ),
    ],
)
def test_budgets_are_shortened_in_what_runs(shown, run):
    assert shorten(shown) == run


def test_every_fence_of_the_docs_names_its_language_and_skips_say_why():
    pages = doc_pages()
    assert any(p.name == "README.md" for p in pages) and len(pages) > 10
    found = [b for p in pages for b in blocks(p)]
    assert not [b.where for b in found if not b.lang], "a fence without a language"
    assert sum(b.skip is None for p in pages for b in runnable(p)) >= 30
    assert all(b.skip for b in found if b.skip is not None)


def test_indentation_inside_a_block_is_kept(tmp_path):
    page = _page(
        tmp_path,
        "```python\nif True:\n    print('in')\n```\n\n"
        "- item\n  ```python\n  for i in range(1):\n      print(i)\n  ```\n",
    )
    assert [b.code for b in blocks(page)] == [
        "if True:\n    print('in')\n",
        "for i in range(1):\n    print(i)\n",
    ]
    assert len(list(run_page(page, tmp_path))) == 2
