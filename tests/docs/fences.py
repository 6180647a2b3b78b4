"""The fenced code blocks of the README and of the documentation pages, as tests read them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: A fence's opening line: its language, then options such as notest="why it is not run".
FENCE = re.compile(r"^```(?P<language>[\w+-]*)(?P<options>.*)$")
NOTEST = re.compile(r'\bnotest="(?P<reason>[^"]*)"')


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, why it is not run (if it is not)."""

    path: Path
    line: int
    language: str
    options: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.language in ("python", "py")

    @property
    def not_run_because(self) -> str | None:
        """The reason given with `notest="…"`; None when the block is meant to run."""
        found = NOTEST.search(self.options)
        return found["reason"] if found else None


def pages() -> list[Path]:
    """The README and every page of the documentation."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    found: list[Block] = []
    opening: tuple[int, re.Match[str]] | None = None
    body: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if opening is None:
            if match := FENCE.match(line):
                opening, body = (number, match), []
        elif line.startswith("```"):
            start, match = opening
            found.append(
                Block(path, start, match["language"], match["options"], "\n".join(body) + "\n")
            )
            opening = None
        else:
            body.append(line)
    if opening is not None:
        raise AssertionError(f"{path}: the fence opened at line {opening[0]} never closes")
    return found
