"""`jobpulse serve --workers N`: the serving process (migrated, the port bound) supervises N
worker processes through uvicorn's multiprocess supervisor. Each worker is a replica of its
own on the one PostgreSQL database: it serves requests on the shared port and takes its share
of the background duties through the database, as replicas do. The workers sign dashboard
sessions with one secret, sum their metrics through PROMETHEUS_MULTIPROC_DIR, and end when
their supervisor ends, however it ends.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import multiprocess
from pydantic import SecretStr
from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from jobpulse.api.app import create_app
from jobpulse.api.protocol import server_options
from jobpulse.config import Settings
from jobpulse.metrics import MULTIPROCESS_DIR
from jobpulse.telemetry import setup_tracing

#: Seconds between a worker's checks that its supervisor still runs.
SUPERVISOR_CHECK_S = 0.5
#: Seconds a worker has to answer its supervisor's health check (uvicorn's default is 5): a
#: new worker answers once it has imported jobpulse, which on a busy host takes longer, and
#: a worker killed as hung then would be replaced by another as slow, for ever.
HEALTH_CHECK_S = 60


def serve_workers(settings: Settings, workers: int, **options: Any) -> int:
    """Serve `settings`' database with `workers` processes (uvicorn.run's `options`) until
    SIGTERM or SIGINT; the exit status (uvicorn's STARTUP_FAILURE if a worker could not start).
    """
    if settings.session_secret is None:  # one secret, or a session would work on one worker
        secret = SecretStr(secrets.token_urlsafe(32))
        settings = settings.model_copy(update={"session_secret": secret})
    with _metrics_folder():
        config = WorkerConfig(settings, workers=workers, **options)
        supervisor = Supervisor(config, sockets=[config.bind_socket()])
        supervisor.run()
    return STARTUP_FAILURE if supervisor.failed else 0


@contextlib.contextmanager
def _metrics_folder() -> Iterator[None]:
    """A fresh folder for the workers' metrics, named by PROMETHEUS_MULTIPROC_DIR while they
    run (inside the folder it already names, if any) and removed after.
    """
    given = os.environ.get(MULTIPROCESS_DIR)
    with tempfile.TemporaryDirectory(prefix="jobpulse-metrics-", dir=given) as folder:
        os.environ[MULTIPROCESS_DIR] = folder
        try:
            yield
        finally:
            if given is None:
                del os.environ[MULTIPROCESS_DIR]
            else:
                os.environ[MULTIPROCESS_DIR] = given


class WorkerConfig(Config):
    """uvicorn's Config of the workers: it is sent to each worker, which makes its app there,
    and its guarded protocol (a class made of the settings, which cannot be sent) too.
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        guarded = server_options(settings)
        del guarded["http"]
        app = functools.partial(worker_app, settings, os.getpid())
        super().__init__(
            app,
            factory=True,
            http="httptools",
            timeout_worker_healthcheck=HEALTH_CHECK_S,
            **options,
            **guarded,
        )
        self.settings = settings

    def load(self) -> None:
        super().load()
        self.http_protocol_class = server_options(self.settings)["http"]


def worker_app(settings: Settings, supervisor: int) -> FastAPI:
    """The app of one worker, made in it; the worker drains and exits once its `supervisor`
    (a process id) is gone, killed say, even before, instead of serving on alone.
    """
    setup_tracing(console=settings.trace_console)
    threading.Thread(
        target=_end_with, args=(supervisor,), name="jobpulse-supervisor", daemon=True
    ).start()
    return create_app(settings, serving=True)


def _end_with(supervisor: int) -> None:
    while os.getppid() == supervisor:
        time.sleep(SUPERVISOR_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn drains on SIGTERM


class Supervisor(Multiprocess):
    """uvicorn's supervisor, which also marks a dead worker dead in the metrics (its live
    gauges go; what it counted stays in the sums), and remembers a worker that failed to start.
    """

    failed = False

    def keep_subprocess_alive(self) -> None:
        before = list(self.processes)
        super().keep_subprocess_alive()
        for process in before:
            if process.pid is not None and process.exitcode is not None:
                multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                self.failed = self.failed or process.exitcode == STARTUP_FAILURE
