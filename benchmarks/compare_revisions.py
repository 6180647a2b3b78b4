"""`make bench`'s sections at two checkouts of jobpulse, side by side: each section runs at
one checkout then the other, in alternating order from round to round (old, new; new, old;
...), so that the machine's drift falls on both alike. Every number a section prints is
parsed; per figure come the median at each checkout, new / old, and the spread of each
checkout's own rounds (the machine's noise for that figure).

    python -m benchmarks.compare_revisions OLD_DIR NEW_DIR --sections transitions,http \
        --rounds 3 --out /tmp/compare

Each side runs this interpreter with `PYTHONPATH=<dir>/src:<dir>` from its own directory, so
each side's own benchmark code measures it; the BENCH_* variables of the environment reach
both alike. A figure is a number at the same place of the same line (numbers left out of
the line's shape); numbers equal in every run (sizes, concurrency) are labels, not figures.
Verdicts ("target ...: met") are left out of the shape so that a met and a missed target
compare.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

NUMBER = re.compile(r"(?<![A-Za-z_\d.])-?\d+(?:\.\d+)?")  # not p99's 99
VERDICT = re.compile(r"\(?targets? [^:]*: (?:met|MISSED)\)?")
SIDES = ("old", "new")
STDERR = "\n--- stderr "


@dataclass
class Figure:
    """One figure's values at each side, a value a round."""

    section: str
    shape: str
    index: int
    values: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})

    @property
    def label(self) -> str:
        """The line's shape with this figure marked `[*]` and the other numbers `#`."""
        parts = self.shape.split("#")
        marked = "".join(
            part + ("" if n == len(parts) - 1 else "[*]" if n == self.index else "#")
            for n, part in enumerate(parts)
        )
        return " ".join(marked.split())


def figures_of(output: str) -> dict[tuple[str, int], float]:
    """The numbers of a section's output by (line shape, their place on it); a shape seen
    again (a round a line, a size a line) is told apart by its occurrence.
    """
    found: dict[tuple[str, int], float] = {}
    seen: Counter[str] = Counter()
    for line in output.splitlines():
        if line.startswith("==") or not line.strip():
            continue
        text = VERDICT.sub("", line)
        shape = " ".join(NUMBER.sub("#", text).split())
        seen[shape] += 1
        key = f"{shape} (line {seen[shape]})" if seen[shape] > 1 else shape
        for index, number in enumerate(NUMBER.findall(text)):
            found[(key, index)] = float(number)
    return found


def command(sizes: list[str]) -> list[str]:
    """`python -m benchmarks`, first setting each `module.NAME=integer` of `sizes` (sizes no
    BENCH_* variable reaches, such as retention.JOBS) in the benchmarks' own modules.
    """
    lines = ["import importlib, runpy"]
    for size in sizes:
        name, value = size.split("=")
        module, constant = name.rsplit(".", 1)
        lines.append(f"importlib.import_module('benchmarks.{module}').{constant} = {int(value)}")
    lines.append("runpy.run_module('benchmarks', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", "; ".join(lines)]


def run_section(
    directory: Path, section: str, log: Path, sizes: list[str]
) -> tuple[float, tuple[float, ...]]:
    """Run one section at the checkout in `directory` into `log`: seconds, and the load."""
    environment = os.environ | {
        "PYTHONPATH": f"{directory / 'src'}:{directory}",
        "BENCH_ONLY": section,
    }
    began = time.monotonic()
    done = subprocess.run(
        command(sizes),
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    took = time.monotonic() - began
    log.write_text(f"{done.stdout}{STDERR}(exit {done.returncode})\n{done.stderr}")
    return took, os.getloadavg()


def spread(values: list[float]) -> float:
    """The rounds' range as a share of their median (0 for one round)."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / abs(middle) if middle and len(values) > 1 else 0.0


def verdict(figure: Figure) -> str:
    old, new = figure.values["old"], figure.values["new"]
    ratio = statistics.median(new) / statistics.median(old) if statistics.median(old) else 1.0
    noise = max(spread(old), spread(new))
    if (min(new) <= max(old) and min(old) <= max(new)) or abs(ratio - 1) <= noise:
        return "within noise"
    return "higher" if ratio > 1 else "lower"


def table(figures: list[Figure]) -> str:
    rows = [
        "| section | figure | old median | new median | new/old | noise (old; new) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        old, new = figure.values["old"], figure.values["new"]
        if not old or not new or len(set(old + new)) == 1:
            continue
        ratio = statistics.median(new) / statistics.median(old) if statistics.median(old) else 0
        rows.append(
            f"| {figure.section} | {figure.label} | {statistics.median(old):g} "
            f"| {statistics.median(new):g} | {ratio:.2f} "
            f"| ±{spread(old) / 2:.0%}; ±{spread(new) / 2:.0%} | {verdict(figure)} |"
        )
    return "\n".join(rows)


def tabulate(directories: list[Path]) -> list[Figure]:
    """Every figure of the runs logged in `directories` (each `SECTION.SIDE.ROUND.log`; a
    run that failed part way counts with the lines it printed).
    """
    figures: dict[tuple[str, str, int], Figure] = {}
    for directory in directories:
        for log in sorted(directory.glob("*.*.*.log")):
            section, side, _turn = log.name.removesuffix(".log").split(".")
            output = log.read_text().split(STDERR)[0]
            for (shape, index), value in figures_of(output).items():
                figure = figures.setdefault((section, shape, index), Figure(section, shape, index))
                figure.values[side].append(value)
    return sorted(figures.values(), key=lambda f: (f.section, f.shape, f.index))


def compare(
    directories: dict[str, Path], sections: list[str], rounds: range, out: Path, sizes: list[str]
) -> None:
    """Run `sections` for `rounds` at both sides, logging each run into `out` (an even round
    runs the old side first, an odd one the new side).
    """
    out.mkdir(parents=True, exist_ok=True)
    for turn in rounds:
        for section in sections:
            for side in SIDES if turn % 2 == 0 else SIDES[::-1]:
                log = out / f"{section}.{side}.{turn}.log"
                took, load = run_section(directories[side], section, log, sizes)
                loads = ", ".join(f"{n:.1f}" for n in load)
                print(f"{section:12} {side} round {turn}: {took:4.0f} s, load {loads}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, nargs="?")
    parser.add_argument("new", type=Path, nargs="?")
    parser.add_argument("--sections", help="comma-separated, as BENCH_ONLY")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--first-round", type=int, default=0, help="to add rounds to an earlier comparison"
    )
    parser.add_argument("--out", type=Path, default=Path("compare-revisions"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODULE.NAME=N",
        help="a size no BENCH_* variable reaches, e.g. retention.JOBS=5000 (both sides)",
    )
    parser.add_argument(
        "--tabulate", type=Path, nargs="+", help="only tabulate the logs in these directories"
    )
    arguments = parser.parse_args()
    if not arguments.tabulate:
        if not (arguments.old and arguments.new and arguments.sections):
            parser.error("OLD, NEW and --sections are needed to run")
        sides = {"old": arguments.old.resolve(), "new": arguments.new.resolve()}
        sections = [name.strip() for name in arguments.sections.split(",")]
        first = arguments.first_round
        compare(
            sides, sections, range(first, first + arguments.rounds), arguments.out, arguments.set
        )
    print(table(tabulate(arguments.tabulate or [arguments.out])))


if __name__ == "__main__":
    main()
