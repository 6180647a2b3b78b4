"""The conformance suite covers the whole JobStore: every public operation of the Protocol
has tests of its own in tests/storage (named `test_<operation>_…`), run on SQLite and on
PostgreSQL. An operation added to the store without one fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Protocol

import tests.storage
from jobpulse.storage.store import JobStore


def operations() -> set[str]:
    """The public members the JobStore Protocol declares (methods and properties), its own
    and those of the Protocols it is made of (one a feature: usage, tokens, alerts, ...).
    """
    protocols = [
        cls
        for cls in JobStore.__mro__
        if getattr(cls, "_is_protocol", False) and cls is not Protocol
    ]
    return {name for cls in protocols for name in vars(cls) if not name.startswith("_")}


def suite_tests() -> list[str]:
    """The names of the suite's tests, in every test module of tests/storage."""
    names = []
    for module in pkgutil.iter_modules(tests.storage.__path__):
        if module.name.startswith("test_store_") and module.name != __name__.rpartition(".")[2]:
            found = importlib.import_module(f"tests.storage.{module.name}")
            names += [name for name, _f in inspect.getmembers(found, inspect.isfunction)]
    return [name for name in names if name.startswith("test_")]


def covered(name: str, members: set[str]) -> str | None:
    """The operation a test is named for: the longest `test_<operation>` its name begins
    with (so `test_create_batch_job_…` is about create_batch_job, not create).
    """
    named = [m for m in members if name == f"test_{m}" or name.startswith(f"test_{m}_")]
    return max(named, key=len, default=None)


def test_every_store_operation_has_a_conformance_test() -> None:
    members = operations()
    assert {"create", "apply", "listen", "traffic", "close"} <= members  # the Protocol is read
    tested = {covered(name, members) for name in suite_tests()} - {None}
    assert sorted(members - tested) == [], "JobStore operations without a conformance test"
