"""Every command the README and the documentation show is one jobpulse and the Makefile know.

A `jobpulse …` line is run with `--help` added: the command and every option it names must
exist (an unknown one fails before the help is printed). A `make …` line must be a target
`make -n` accepts.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.fences import ROOT, blocks, pages

JOBPULSE = str(Path(sys.executable).with_name("jobpulse"))
SHELLS = ("sh", "bash", "shell", "console")
#: What ends a command on a shell line.
SEPARATORS = {"|", "||", "&&", ";", "&", ">", "2>"}


def _commands(program: str) -> list[tuple[str, list[str]]]:
    """(where, arguments) of every `program …` command in the shell blocks."""
    found = []
    for path in pages():
        for block in blocks(path):
            if block.language not in SHELLS:
                continue
            for line in block.code.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                for index, word in enumerate(words):
                    if word == program or word.endswith(f"/bin/{program}"):
                        arguments = []
                        for argument in words[index + 1 :]:
                            if argument in SEPARATORS:
                                break
                            arguments.append(argument.removesuffix(")"))
                            if argument.endswith(")"):  # the end of a $(…)
                                break
                        found.append((block.where, arguments))
    return found


JOBPULSE_COMMANDS = _commands("jobpulse")
MAKE_COMMANDS = _commands("make")


def test_the_readme_shows_commands_of_both() -> None:
    readme = [where for where, _ in JOBPULSE_COMMANDS + MAKE_COMMANDS if where.startswith("README")]
    assert len(readme) >= 8


@pytest.mark.parametrize(
    ("where", "arguments"),
    JOBPULSE_COMMANDS,
    ids=[f"{where} {arguments[0]}" for where, arguments in JOBPULSE_COMMANDS],
)
def test_a_jobpulse_command_is_known(where: str, arguments: list[str]) -> None:
    done = subprocess.run(
        [JOBPULSE, *arguments, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, f"{where}: jobpulse {' '.join(arguments)}\n{done.stderr}"
    assert "Usage: jobpulse" in done.stdout


@pytest.mark.parametrize(
    ("where", "arguments"),
    MAKE_COMMANDS,
    ids=[f"{where} {arguments[0]}" for where, arguments in MAKE_COMMANDS],
)
def test_a_make_target_is_known(where: str, arguments: list[str]) -> None:
    done = subprocess.run(
        ["make", "-n", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"{where}: make {' '.join(arguments)}\n{done.stderr}"
