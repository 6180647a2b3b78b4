"""The HTTP API: `create_app(settings)` builds it."""

from __future__ import annotations

from jobpulse.api.app import create_app

__all__ = ["create_app"]
