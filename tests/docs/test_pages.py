"""The README stays short and the documentation stays true to the code it describes."""

from __future__ import annotations

import re

from benchmarks.__main__ import SECTIONS
from pydantic.fields import FieldInfo

from jobpulse.config import Settings
from tests.docs.fences import DOCS, README, pages

#: Variables read outside Settings: by the command line, the tests and the benchmarks.
OTHER_VARIABLES = {
    "JOBPULSE_URL",
    "JOBPULSE_API_KEY",
    "JOBPULSE_TEST_POSTGRES_URL",
    "JOBPULSE_CHROMIUM",
    "JOBPULSE_BENCH_POSTGRES_URL",
}
#: A row of the configuration tables: the variable, its default.
SETTING_ROW = re.compile(r"^\| `(?P<name>JOBPULSE_\w+)` \| (?P<default>[^|]+) \|", re.MULTILINE)


def _names(name: str, field: FieldInfo) -> set[str]:
    """The environment variables a setting is read from."""
    choices = getattr(field.validation_alias, "choices", None)
    return set(choices) if choices else {f"JOBPULSE_{name.upper()}"}


def _shown(default: object) -> str:
    """A default as the configuration page writes it."""
    if default is None:
        return "`none`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{default}`"


def test_the_readme_fits_in_260_lines() -> None:
    assert len(README.read_text().splitlines()) <= 260


def test_the_site_home_is_the_readme() -> None:
    # Refresh it with: sed 's#](docs/#](#g' README.md > docs/index.md
    expected = README.read_text().replace("](docs/", "](")
    assert (DOCS / "index.md").read_text() == expected


def test_the_configuration_page_gives_every_setting_and_its_default() -> None:
    page = (DOCS / "configuration.md").read_text()
    rows = {row["name"]: row["default"].strip() for row in SETTING_ROW.finditer(page)}
    for name, field in Settings.model_fields.items():
        variables = _names(name, field)
        assert any(f"`{variable}`" in page for variable in variables), name
        for variable in variables & rows.keys():
            if rows[variable].startswith("`"):  # "one per process" and the like are prose
                assert rows[variable] == _shown(field.default), variable


def test_every_variable_the_pages_name_exists() -> None:
    known = OTHER_VARIABLES.union(
        *(_names(name, field) for name, field in Settings.model_fields.items())
    )
    named = {
        variable
        for path in pages()
        for variable in re.findall(r"\bJOBPULSE_[A-Z0-9_]*[A-Z0-9]", path.read_text())
    }
    assert named - known == set()


def test_every_figure_names_the_bench_section_it_comes_from() -> None:
    page = (DOCS / "performance.md").read_text()
    figures = page.split("| figure | last run (earlier runs) | target |\n|---|---|---|\n")[1]
    sources = page.split("| figure (row of the table above) | `make bench` section")[1]
    rows = [line for line in figures.split("\n\n")[0].splitlines() if line.startswith("|")]
    named = re.findall(r"^\| [^|]+ \| `(\w+)`", sources.split("\n\n")[0], flags=re.MULTILINE)
    assert len(named) == len(rows)
    assert set(named) == set(SECTIONS)
