"""The API fixtures live in tests/conftest.py (the webhook tests use them too)."""

from __future__ import annotations

from tests.conftest import MakeKey

__all__ = ["MakeKey"]
