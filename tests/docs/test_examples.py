"""Every Python example of the documentation runs as written, or says why it cannot.

An example that opens the default database (`sqlite:///./jobpulse.db`) runs on each
database; the others run once. The README's own example is run by
tests/integration/test_readme.py, which also checks what it prints.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.docs.fences import DOCS, Block, blocks, pages

DEFAULT_DATABASE = "sqlite:///./jobpulse.db"
EXAMPLES = [
    block
    for path in sorted(DOCS.rglob("*.md"))
    for block in blocks(path)
    if block.is_python and block.not_run_because is None
]


def _run(block: Block, cwd: Path) -> None:
    script = cwd / "example.py"
    script.write_text(block.code)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )
    assert done.returncode == 0, f"{block.where}\n{done.stderr}"


@pytest.mark.parametrize(
    "block",
    [block for block in EXAMPLES if DEFAULT_DATABASE in block.code],
    ids=lambda block: block.where,
)
def test_an_example_on_the_database_runs(block: Block, database_url: str, tmp_path: Path) -> None:
    _run(replace(block, code=block.code.replace(DEFAULT_DATABASE, database_url)), tmp_path)


@pytest.mark.parametrize(
    "block",
    [block for block in EXAMPLES if DEFAULT_DATABASE not in block.code],
    ids=lambda block: block.where,
)
def test_an_example_runs(block: Block, tmp_path: Path) -> None:
    _run(block, tmp_path)


def test_the_documentation_has_examples_that_run() -> None:
    assert len(EXAMPLES) >= 2, [block.where for block in EXAMPLES]


def test_every_python_block_not_run_says_why() -> None:
    unexplained = [
        block.where
        for path in pages()
        for block in blocks(path)
        if block.is_python and "notest" in block.options and not block.not_run_because
    ]
    assert unexplained == []
