"""Every module depends inward: no import runs from a lower layer to a higher one, SQLAlchemy
and the database drivers are imported only under storage/, and the pure rules import nothing
but the standard library and other pure rules. Read from the source (ast), nothing imported.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "jobpulse"

#: The layers, lowest first: a module may import from its own layer and those below it. Each
#: entry is a module or a package (all that is under it), the longest match placing a module.
LAYERS: tuple[tuple[str, ...], ...] = (
    # Pure rules and types: the domain, its errors and clock, and each feature's rules.
    (
        "jobpulse.domain",
        "jobpulse.errors",
        "jobpulse.clock",
        "jobpulse.documents",
        "jobpulse.listing",
        "jobpulse.batches.rules",
        "jobpulse.batches.answers",
        "jobpulse.alerts.rules",
        "jobpulse.bulk.rules",
        "jobpulse.reports.rules",
        "jobpulse.views.rules",
        "jobpulse.stats.windows",
        "jobpulse.sweeper.rules",
        "jobpulse.webhooks.payload",
        "jobpulse.webhooks.policy",
        "jobpulse.usage.rules",
        "jobpulse.usage.prices",
        "jobpulse.usage.figures",
        "jobpulse.tokens.rules",
        "jobpulse.llm.stops",
    ),
    # What every layer may use and that holds no store: settings, metrics, tracing, logs,
    # the read gate, the wire schemas, the watchdog, webhook signing and guarding.
    (
        "jobpulse",
        "jobpulse.config",
        "jobpulse.metrics",
        "jobpulse.telemetry",
        "jobpulse.request_spans",
        "jobpulse.logs",
        "jobpulse.gate",
        "jobpulse.public",
        "jobpulse.schemas",
        "jobpulse.watchdog",
        "jobpulse.heap",
        "jobpulse.webhooks",
        "jobpulse.webhooks.guard",
        "jobpulse.webhooks.signing",
        "jobpulse.webhooks.fairness",
        "jobpulse.usage.schemas",
        "jobpulse.usage.shown",
        "jobpulse.tokens.schemas",
        "jobpulse.reports.schemas",
    ),
    # The JobStore and its drivers: the only code that knows SQL.
    ("jobpulse.storage",),
    # What works on the store for everyone: jobs, keys and grants, the live feed, delivery.
    (
        "jobpulse.jobs",
        "jobpulse.keys",
        "jobpulse.grants",
        "jobpulse.feed",
        "jobpulse.webhooks.delivery",
        "jobpulse.webhooks.sender",
        "jobpulse.webhooks.recorder",
        "jobpulse.tokens",
    ),
    # The features, each with its loop: LLM batches, the sweeper, figures, retention.
    (
        "jobpulse.batches",
        "jobpulse.sweeper",
        "jobpulse.stats",
        "jobpulse.retention",
        "jobpulse.alerts",
        "jobpulse.usage",
        "jobpulse.bulk",
        "jobpulse.reports",
        "jobpulse.views",
    ),
    # The edges: the HTTP API, the dashboard, the command line, the SDK.
    (
        "jobpulse.api",
        "jobpulse.dashboard",
        "jobpulse.cli",
        "jobpulse.command",
        "jobpulse.bootstrap",
        "jobpulse.demo",
        "jobpulse.client",
        "jobpulse.calls",
        "jobpulse.tracking",
        "jobpulse.llm",
        "jobpulse.integrations",
    ),
)

#: Modules that must stay pure: the standard library and each other, nothing else.
PURE = LAYERS[0]

#: What only storage/ may import.
DATABASE_LIBRARIES = frozenset({"sqlalchemy", "alembic", "asyncpg", "psycopg", "sqlite3"})

#: The package's front door names `JobManager` and `Settings` lazily (for type checkers,
#: under TYPE_CHECKING): those names are not a dependency of the layer it sits in.
FRONT_DOOR = "jobpulse"


def module_name(path: Path) -> str:
    """The dotted name of a module file under src/."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[str]:
    """Every module of jobpulse but the migrations (Alembic's scripts, loaded by name)."""
    return sorted(
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts
    )


@cache
def path_of(module: str) -> Path:
    base = SRC.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_module(name: str) -> bool:
    return path_of(name).exists()


def _type_checking_nodes(module: str, tree: ast.Module) -> set[int]:
    """The nodes of the front door's TYPE_CHECKING block (none elsewhere)."""
    if module != FRONT_DOOR:
        return set()
    return {
        id(inner)
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for inner in ast.walk(node)
    }


def _imported_from(package: str, node: ast.ImportFrom) -> Iterator[str]:
    """The modules a `from … import …` names: a name that is a module of its own counts as
    that module, any other as the module it is taken from.
    """
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        anchor = parts[: len(parts) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    for alias in node.names:
        inner = f"{base}.{alias.name}"
        yield inner if base.startswith("jobpulse") and is_module(inner) else base


def imports(module: str) -> Iterator[tuple[str, int]]:
    """Every module `module` imports, with its line; the front door's TYPE_CHECKING block
    left out.
    """
    tree = ast.parse(path_of(module).read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(module, tree)
    package = module if path_of(module).name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            for name in _imported_from(package, node):
                yield name, node.lineno


def layer_of(module: str) -> int:
    """The layer a jobpulse module sits in (by its longest listed prefix)."""
    best = (-1, -1)
    for number, entries in enumerate(LAYERS):
        for entry in entries:
            if module == entry or module.startswith(entry + "."):
                best = max(best, (len(entry), number))
    if best[1] < 0:
        raise LookupError(f"{module} sits in no layer: add it to LAYERS")
    return best[1]


def describe(number: int) -> str:
    return f"layer {number} ({', '.join(LAYERS[number][:3])}…)"


@pytest.mark.parametrize("module", modules())
def test_no_module_imports_from_a_layer_above_its_own(module: str) -> None:
    own = layer_of(module)
    upward = [
        f"line {line}: {name} ({describe(layer_of(name))})"
        for name, line in imports(module)
        if name.startswith("jobpulse") and layer_of(name) > own
    ]
    assert not upward, f"{module} ({describe(own)}) imports from above: {upward}"


@pytest.mark.parametrize("module", modules())
def test_only_storage_imports_sqlalchemy_or_a_driver(module: str) -> None:
    if module.startswith("jobpulse.storage"):
        return
    found = [
        f"line {line}: {name}"
        for name, line in imports(module)
        if name.split(".")[0] in DATABASE_LIBRARIES
    ]
    assert not found, f"{module} is outside storage/ and imports {found}"


#: The two drivers: the only code that knows which database it speaks to.
DRIVERS = ("jobpulse.storage.sqlite", "jobpulse.storage.postgres")
#: What only a driver may import: a database's own client, or SQLAlchemy's dialect of it.
DRIVER_LIBRARIES = ("asyncpg", "psycopg", "sqlite3", "sqlalchemy.dialects")
#: Tests of which database is in use, as they are spelt in code.
BACKEND_TESTS = ("dialect.name", ".get_backend_name()", '== "sqlite"', '== "postgresql"')


def _outside_the_drivers(module: str) -> bool:
    return not any(module == d or module.startswith(d + ".") for d in DRIVERS)


@pytest.mark.parametrize("module", [m for m in modules() if _outside_the_drivers(m)])
def test_only_the_drivers_import_a_database_client_or_test_which_database(module: str) -> None:
    found = [
        f"line {line}: imports {name}"
        for name, line in imports(module)
        if any(name == lib or name.startswith(lib + ".") for lib in DRIVER_LIBRARIES)
    ]
    lines = path_of(module).read_text(encoding="utf-8").splitlines()
    found += [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(lines, 1)
        if any(test in line for test in BACKEND_TESTS)
    ]
    assert not found, f"{module} is outside the drivers and knows its database: {found}"


@pytest.mark.parametrize("module", PURE)
def test_pure_rules_import_only_the_standard_library_and_each_other(module: str) -> None:
    found = [
        f"line {line}: {name}"
        for name, line in imports(module)
        if name.split(".")[0] not in sys.stdlib_module_names
        and not any(name == pure or name.startswith(pure + ".") for pure in PURE)
    ]
    assert not found, f"{module} is pure and imports {found}"


def test_the_checks_read_what_they_check() -> None:
    """Not vacuous: imports are found (a module named from its package too) and placed."""
    assert "jobpulse.batches.rules" in dict(imports("jobpulse.storage.store"))
    assert "jobpulse.jobs.steps" in dict(imports("jobpulse.jobs.manager"))  # from package import
    assert "sqlalchemy" in {name.split(".")[0] for name, _ in imports("jobpulse.storage.tables")}
    assert layer_of("jobpulse.batches.rules") < layer_of("jobpulse.storage.store")
    assert layer_of("jobpulse.storage.store") < layer_of("jobpulse.jobs.manager")
    assert layer_of("jobpulse.jobs.manager") < layer_of("jobpulse.batches.poller")
    assert layer_of("jobpulse.sweeper.loop") < layer_of("jobpulse.api.app")
    with pytest.raises(LookupError):
        layer_of("jobpulse_elsewhere")
