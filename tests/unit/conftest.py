"""For the tracker's tests: the real app on loopback, and what may fail between it and the
SDK. (The other unit tests need neither.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobpulse import client as sdk
from jobpulse.config import Settings
from tests.served import Faults, Served


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK retries a connection error at once (not after 0.2, 0.5 and 1 s)."""
    monkeypatch.setattr(sdk, "RETRY_DELAYS", (0.0, 0.0, 0.0))


@pytest.fixture
def served(database_url: str) -> Iterator[Served]:
    """The app on a fresh database of each kind, served on loopback."""
    server = Served(Settings(database_url=database_url))
    yield server
    server.close()


@pytest.fixture
def secret(served: Served) -> str:
    """A member key of the served app."""
    return served.key()


@pytest.fixture
def faults() -> Faults:
    """A transport to the served app that fails nothing until told to."""
    return Faults()
