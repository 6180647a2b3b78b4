"""What `serving=True` (the app of `jobpulse serve`) changes: the heap is settled at startup."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from jobpulse import Settings
from jobpulse.api import create_app


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_a_served_app_freezes_its_startup_heap_and_collects_less_often(
    collector: None, database_url: str
) -> None:
    assert gc.get_freeze_count() == 0
    app = create_app(Settings(database_url=database_url, gc_threshold=12_345), serving=True)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000  # modules, the app, its database
        assert gc.get_threshold()[0] == 12_345


async def test_an_embedded_app_leaves_the_collector_alone(
    collector: None, database_url: str
) -> None:
    threshold = gc.get_threshold()
    app = create_app(Settings(database_url=database_url, gc_threshold=12_345))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold
