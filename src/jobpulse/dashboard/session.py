"""Dashboard sign-in: an API key exchanged for a session kept on the server (in the database,
so every replica knows it) and a signed, HttpOnly, SameSite=Strict cookie holding the
session's token (never the key). Every request checks the session: signing out ends it (the
old cookie then signs no one in), as does its key's revocation or its expiry, and the
dashboard's live streams of it close within seconds (see jobpulse.grants). Every form
carries a CSRF token that must equal the one in its cookie; signing in renews it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from jobpulse.clock import utcnow
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

    async def sign_in(self, request: Request, response: Response, key: str) -> None:
        """Start a session of `key`, set its cookie and a new CSRF cookie on `response`;
        UnauthorizedError if the key is not valid.
        """
        keys = _keys(request)
        await keys.authenticate(key)  # a read (cached): a wrong key costs no write
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires_at = now + timedelta(seconds=self.max_age_s)
        started = await keys.store.start_session(_session_id(token), hash_key(key), now, expires_at)
        if not started:
            raise UnauthorizedError("invalid or revoked API key")
        secure = request.url.scheme == "https"
        response.set_cookie(
            SESSION_COOKIE,
            self.serializer.dumps({"session": token}),
            max_age=self.max_age_s,
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        renew_csrf(request, response, secure)

    async def session(self, request: Request) -> LiveSession:
        """The live session the request's cookie holds; SignInRequiredError without one."""
        token = self._token(request)
        if token is None:
            raise SignInRequiredError
        session_id = _session_id(token)
        key = await _keys(request).store.find_session(session_id, utcnow())
        if key is None:
            raise SignInRequiredError
        actor = Actor(key.organization_id, key.user_id, key.is_admin)
        return LiveSession(actor, key.key_hash, session_id)

    async def actor(self, request: Request) -> Actor:
        """Who the session is for; SignInRequiredError without a valid one."""
        return (await self.session(request)).actor

    async def sign_out(self, request: Request, response: Response) -> None:
        """End the request's session (on every replica) and drop its cookie."""
        token = self._token(request)
        if token is not None:
            keys = _keys(request)
            if await keys.store.end_session(_session_id(token), utcnow()):
                keys.grants.changed()  # its live streams close now
        response.delete_cookie(SESSION_COOKIE)

    def _token(self, request: Request) -> str | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None:
            return None
        try:
            data = self.serializer.loads(cookie, max_age=self.max_age_s)
            return str(data["session"])
        except (BadSignature, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A live dashboard session: who it is for, its key's hash and its id."""

    actor: Actor
    key_hash: str
    session_id: str


def _session_id(token: str) -> str:
    """What the database knows a session by: the SHA-256 of the cookie's token."""
    return hashlib.sha256(token.encode()).hexdigest()


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


def renew_csrf(request: Request, response: Response, secure: bool) -> None:
    """Give this browser a new CSRF token (at sign-in: a token planted before it is void)."""
    token = request.state.new_csrf = secrets.token_urlsafe(24)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure)


def check_csrf(request: Request, submitted: str | None) -> None:
    """CsrfRefusedError unless the form's token equals its cookie's."""
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfRefusedError(
            "the form is stale or was not sent by this dashboard; reload the page"
        )
