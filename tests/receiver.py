"""A real HTTP webhook receiver on loopback, for tests: it records every request and answers
with the status codes it is given, in order (the last one repeats).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    #: time.monotonic() when it arrived.
    at: float = 0.0

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Serves on loopback (127.0.0.1 unless told another) until closed."""

    statuses: list[int] = field(default_factory=lambda: [200])
    #: 0 picks a free port; a port given brings a closed receiver back at the same address.
    port: int = 0
    received: list[Received] = field(default_factory=list)
    got_one: threading.Event = field(default_factory=threading.Event)
    #: Cleared, requests wait before answering (to kill a sender mid-delivery).
    released: threading.Event = field(default_factory=threading.Event)
    #: Headers added to every answer (Retry-After, Location).
    headers: dict[str, str] = field(default_factory=dict)
    #: Makes the body of every answer, sent chunk by chunk, `pause_s` apart (to trickle or
    #: to flood); without it the answer is empty.
    body: Callable[[], Iterable[bytes]] | None = None
    pause_s: float = 0.0
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                receiver.received.append(
                    Received(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                    )
                )
                receiver.got_one.set()
                receiver.released.wait(30)
                index = min(len(receiver.received), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                if receiver.body is None:
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_header("connection", "close")
                self.end_headers()
                for chunk in receiver.body():
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(receiver.pause_s)

            def log_message(self, *_args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a sender that died mid-request is what some tests are about

        self.server = Server((self.host, self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
