"""The application factory: each app builds its own database, managers and settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp

from jobpulse import __version__
from jobpulse.alerts.evaluator import AlertEvaluator
from jobpulse.alerts.service import AlertRules
from jobpulse.api import (
    alerts,
    bulk,
    callbacks,
    errors,
    health,
    jobs,
    reference,
    reports,
    stats,
    steps,
    stream,
    tokens,
    usage,
)
from jobpulse.api.cors import ApiCors
from jobpulse.api.lane import JobLane
from jobpulse.api.limits import BodySizeLimit, KeyBeforeBody
from jobpulse.api.tracing import RequestSpans
from jobpulse.batches.poller import BatchPoller
from jobpulse.batches.providers import ProviderClient
from jobpulse.config import Settings
from jobpulse.dashboard import batches as batch_pages
from jobpulse.dashboard import bulk as bulk_pages
from jobpulse.dashboard import deliveries, pages, timeline
from jobpulse.dashboard import views as views_pages
from jobpulse.dashboard.session import Sessions
from jobpulse.feed import EventFeed
from jobpulse.heap import settle_heap
from jobpulse.jobs.hooks import Hooks
from jobpulse.jobs.manager import JobManager
from jobpulse.keys import KeyManager
from jobpulse.request_spans import make_ended_spans
from jobpulse.retention.pruner import prune_forever
from jobpulse.stats.fold import fold_forever
from jobpulse.storage.sql_store import open_store
from jobpulse.sweeper.loop import Sweeper
from jobpulse.tokens.manager import TokenManager
from jobpulse.usage.prices import load_prices
from jobpulse.usage.recorder import UsageRecorder
from jobpulse.watchdog import Watchdog
from jobpulse.webhooks.delivery import Deliverer, new_client

MAX_BODY_BYTES = 1024 * 1024


def _operation_id(route: APIRoute) -> str:
    return route.name


def build_routes(app: FastAPI) -> None:
    """Have FastAPI build its table of routes now: it does on the first request it routes
    (most of a second on a busy machine), which the requests the lane serves (api/lane.py)
    do not reach, so the first request of another route would wait for it under load.
    """
    probe: dict[str, object] = {"type": "http", "path": "/", "root_path": "", "method": "GET"}
    for route in app.router.routes:
        route.matches(dict(probe, headers=[], query_string=b""))


class JobPulseApi(FastAPI):
    """FastAPI with the lane of the hot job routes (api/lane.py) ahead of its whole middleware
    stack, once `lane` says how to build it.
    """

    lane: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.lane is None else self.lane(stack)


def create_app(settings: Settings | None = None, *, serving: bool = False) -> FastAPI:
    """The jobpulse HTTP API on the database `settings` names (already migrated).

    `serving` is for the process that serves it (`jobpulse serve`): the heap is settled after
    startup (see `settle_heap`), which an app embedded in a larger program should not decide.
    """
    settings = settings or Settings()
    prices = load_prices(settings.prices)  # a bad price file is refused before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        wake = asyncio.Event()
        batches_due = asyncio.Event()
        store = open_store(settings)
        app.state.keys = KeyManager(store)
        app.state.feed = EventFeed(store, stream.encode, stream.encode_beat)
        hooks = Hooks(queued=wake.set, events=app.state.feed.committed, batch_due=batches_due.set)
        app.state.jobs = JobManager.from_settings(settings, hooks, store=store)
        app.state.usage = UsageRecorder(app.state.jobs, prices)
        app.state.tokens = TokenManager(app.state.jobs, app.state.keys)
        sweeper = Sweeper.from_settings(app.state.jobs, settings)
        app.state.alert_rules = AlertRules(app.state.jobs, settings.alert_webhook)
        evaluator = AlertEvaluator.from_settings(app.state.jobs, settings)
        app.state.metrics_token = settings.metrics_token
        app.state.watchdog = Watchdog(handling=lambda: list(app.state.jobs.handling))
        providers = ProviderClient(settings)
        async with new_client(settings) as http:
            deliverer = Deliverer(store, settings, http, wake=wake, metrics=app.state.jobs.metrics)
            worker = asyncio.create_task(deliverer.run(), name="jobpulse-webhooks")
            background = [
                asyncio.create_task(
                    sweeper.run(settings.sweep_interval_s),
                    name="jobpulse-sweeper",
                ),
                asyncio.create_task(app.state.watchdog.beat(), name="jobpulse-watchdog"),
                asyncio.create_task(app.state.keys.follow_revocations(), name="jobpulse-keys"),
                asyncio.create_task(app.state.keys.grants.run(), name="jobpulse-grants"),
                asyncio.create_task(app.state.feed.run(), name="jobpulse-feed"),
                asyncio.create_task(fold_forever(store), name="jobpulse-rollups"),
                asyncio.create_task(evaluator.run(), name="jobpulse-alerts"),
            ]
            background.append(
                asyncio.create_task(
                    BatchPoller(app.state.jobs, settings, providers, due=batches_due).run(),
                    name="jobpulse-batches",
                )
            )
            if settings.retention_days is not None:
                pruning = prune_forever(app.state.jobs, settings.retention_days)
                background.append(asyncio.create_task(pruning, name="jobpulse-prune"))
            build_routes(app)
            if serving:
                settle_heap(settings.gc_threshold)
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await deliverer.stop(worker)
                await providers.close()
                await store.close()
                make_ended_spans()  # before the tracer provider shuts down, at exit

    app = JobPulseApi(
        title="jobpulse",
        version=__version__,
        summary="Track, guard and watch background jobs and LLM agent runs.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by api/reference.py (no CDN)
        redoc_url=None,
        generate_unique_id_function=_operation_id,
        # jobpulse wires its own OpenTelemetry; FastAPI's would look providers up per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    app.include_router(stream.router)  # before /v1/jobs/{job_id} would take /v1/jobs/stream
    app.include_router(bulk.router)  # before /v1/jobs/{job_id}/… would take its paths
    app.include_router(reports.router)
    app.include_router(jobs.router)
    app.include_router(callbacks.router)
    app.include_router(steps.router)
    app.include_router(usage.router)
    app.include_router(stats.router)
    app.include_router(alerts.router)
    app.include_router(health.router)
    app.include_router(tokens.router)
    reference.install(app)
    # The dashboard's pages of issue 24 first: /jobs/find and /jobs/bulk before /jobs/{job_id}.
    for extra in (bulk_pages, views_pages, deliveries, batch_pages, timeline):
        app.include_router(extra.router)
    pages.install(app, Sessions.from_settings(settings))
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(KeyBeforeBody)
    app.add_middleware(RequestSpans, inner_spans=settings.trace_inner_spans)
    if origins := settings.cors_origin_list:
        app.add_middleware(ApiCors, origins=origins)
    # Ahead of all of them, and of Starlette's and FastAPI's: it does what they would.
    app.lane = partial(
        JobLane,
        max_bytes=MAX_BODY_BYTES,
        inner_spans=settings.trace_inner_spans,
        origins=origins,
    )
    return app
