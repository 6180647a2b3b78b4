"""CORS for the API (`/v1/…`) from the origins of JOBPULSE_CORS_ORIGINS, by Starlette's
CORSMiddleware; the dashboard and the rest answer no other origin.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

#: What a page may send: a bearer key or token, a JSON body, a stream's resume point.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID")
ALLOWED_METHODS = ("GET", "POST", "PATCH", "DELETE")


def cors_middleware(app: ASGIApp, origins: Sequence[str]) -> CORSMiddleware:
    """Starlette's CORSMiddleware answering `origins` as the API does."""
    return CORSMiddleware(
        app,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        max_age=600,
    )


class ApiCors:
    """ASGI middleware: CORSMiddleware for the paths under `prefix`, nothing elsewhere."""

    def __init__(self, app: ASGIApp, origins: list[str], prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix
        self.cors = cors_middleware(app, origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
