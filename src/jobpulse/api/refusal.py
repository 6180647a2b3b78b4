"""The answer to a request the HTTP protocol refuses before the app sees it, as bytes: the
JSON error every failure answers with, on a connection that then closes.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from jobpulse.api.errors import STATUS_CODES
from jobpulse.errors import JobPulseError


def refusal_bytes(error: JobPulseError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole response answering `error` (its status from the API's error table), with the
    server's default headers and `Connection: close`.
    """
    status = next(code for kind, code in STATUS_CODES.items() if isinstance(error, kind))
    fields = {"code": error.code, "message": error.message}
    body = json.dumps({"error": fields}, separators=(",", ":")).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
