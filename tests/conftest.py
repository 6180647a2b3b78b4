"""Databases for tests: a template migrated once per run, cloned for every test.

Every storage test runs on SQLite and on PostgreSQL through the `database_url` fixture.
PostgreSQL is skipped when no server answers, unless CI is set: then that is a failure.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobpulse import Actor, JobManager, Settings
from jobpulse.api import create_app
from jobpulse.request_spans import make_ended_spans
from jobpulse.storage.migrate import upgrade
from tests.receiver import Receiver

POSTGRES_URL = os.environ.get(
    "JOBPULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def postgres_database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "jobpulse.db"
    asyncio.run(upgrade(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"jobpulse_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    asyncio.run(upgrade(postgres_database_url(name)))
    yield name
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "jobpulse.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        yield from _postgres_database(request.getfixturevalue("postgres_template"))


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        request.getfixturevalue("postgres_template")  # skips or fails without a server
        yield from _postgres_database(None)


def _postgres_database(template: str | None) -> Iterator[str]:
    name = f"jobpulse_test_{uuid.uuid4().hex[:12]}"
    clone = f" TEMPLATE {template}" if template else ""
    asyncio.run(_admin(f"CREATE DATABASE {name}{clone}"))
    yield postgres_database_url(name)
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def manager(database_url: str) -> AsyncIterator[JobManager]:
    jobs = JobManager.from_settings(Settings(database_url=database_url))
    yield jobs
    await jobs.close()


@pytest.fixture
def alice() -> Actor:
    """A member of org-a."""
    return Actor(organization_id="org-a", user_id="alice")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback, answering 200."""
    served = Receiver()
    yield served
    served.close()


MakeKey = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(Settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as client:
        yield client


@pytest.fixture
def make_key(app: FastAPI) -> MakeKey:
    """Headers carrying a new key for (org, user), member unless admin=True."""

    async def make(org: str, user: str, admin: bool = False) -> dict[str, str]:
        _key, secret = await app.state.keys.create(
            organization_id=org, user_id=user, is_admin=admin
        )
        return {"Authorization": f"Bearer {secret}"}

    return make


class Spans(InMemorySpanExporter):
    """The spans exported so far, once the spans of requests that ended are made (which the
    app does within `BATCH_S`, and when it stops): a test reads them at once.
    """

    def get_finished_spans(self) -> tuple[ReadableSpan, ...]:
        make_ended_spans()
        return super().get_finished_spans()

    def clear(self) -> None:
        make_ended_spans()
        super().clear()


@functools.cache
def _exporter() -> Spans:
    memory = Spans()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)  # once per process: the global provider
    return memory


@pytest.fixture
def spans() -> Spans:
    """Every span finished from here on (a tracer provider is set for the whole run)."""
    memory = _exporter()
    memory.clear()
    return memory
