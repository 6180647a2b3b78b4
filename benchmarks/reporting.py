"""How `make bench` prints a figure: a line each, and a verdict against its target."""

from __future__ import annotations

KINDS = ("sqlite", "postgresql")


def verdict(ratio: float, target: float, *, at_most: bool = False) -> str:
    met = ratio <= target if at_most else ratio >= target
    return f"target {'<=' if at_most else '>='} {target}: {'met' if met else 'MISSED'}"


def report(line: str) -> None:
    print(line, flush=True)
