"""Dashboard sign-in: an API key exchanged for a signed, HttpOnly, SameSite=Strict cookie that
holds the key's hash (never the key), checked against the keys on every request, so a revoked
key ends its sessions. Every form carries a CSRF token that must equal the one in its cookie.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from jobpulse.config import Settings
from jobpulse.domain import Actor
from jobpulse.errors import ForbiddenError, UnauthorizedError
from jobpulse.keys import KeyManager, hash_key

SESSION_COOKIE = "jobpulse_session"
CSRF_COOKIE = "jobpulse_csrf"


class SignInRequiredError(Exception):
    """No valid session: the page sends the browser to the sign-in form."""


class CsrfRefusedError(ForbiddenError):
    """A form came without the token its cookie holds."""

    code = "csrf_refused"


@dataclass(frozen=True, slots=True)
class Sessions:
    """Makes and checks session cookies."""

    serializer: URLSafeTimedSerializer
    max_age_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Sessions:
        configured = settings.session_secret
        secret = configured.get_secret_value() if configured else secrets.token_urlsafe(32)
        serializer = URLSafeTimedSerializer(secret, salt="jobpulse-dashboard")
        return cls(serializer, int(settings.session_hours * 3600))

    async def sign_in(self, request: Request, response: Response, key: str) -> Actor:
        """Check `key` and set the session cookie on `response`; UnauthorizedError if bad."""
        actor = await _keys(request).authenticate(key)
        value = self.serializer.dumps({"key": hash_key(key)})
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.max_age_s,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return actor

    async def actor(self, request: Request) -> Actor:
        """Who the session is for; SignInRequiredError without a valid one."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None:
            raise SignInRequiredError
        try:
            data = self.serializer.loads(cookie, max_age=self.max_age_s)
            return await _keys(request).authenticate_hash(str(data["key"]))
        except (BadSignature, KeyError, TypeError, UnauthorizedError):
            raise SignInRequiredError from None


def _keys(request: Request) -> KeyManager:
    keys: KeyManager = request.app.state.keys
    return keys


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (its cookie's, or a new one the page then sets)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token is None:
        token = request.state.new_csrf = secrets.token_urlsafe(24)
    return token


def keep_csrf(request: Request, response: Response, secure: bool) -> None:
    """Set the CSRF cookie if this request made the token."""
    token = getattr(request.state, "new_csrf", None)
    if token is not None:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure)


def check_csrf(request: Request, submitted: str | None) -> None:
    """CsrfRefusedError unless the form's token equals its cookie's."""
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfRefusedError(
            "the form is stale or was not sent by this dashboard; reload the page"
        )
