"""The watchdog catches a loop blocked by time.sleep, names the frame and the job, recovers."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from fastapi import FastAPI

from jobpulse.watchdog import Watchdog


def block_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a careless sync call in a handler does


async def test_a_stall_is_reported_with_the_blocking_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchdog = Watchdog(
        beat_s=0.02, check_s=0.05, lag_warn_s=0.1, stall_s=0.25, handling=lambda: ["job-42"]
    )
    beats = asyncio.create_task(watchdog.beat())
    await asyncio.sleep(0.2)
    assert watchdog.health.state == "ok"
    with caplog.at_level(logging.WARNING, logger="jobpulse.watchdog"):
        block_the_loop(0.8)
        await asyncio.sleep(0.3)
    records = [r for r in caplog.records if "stalled" in r.getMessage()]
    assert records, "no stall reported"
    assert records[0].levelno == logging.ERROR
    assert any(r.levelno == logging.CRITICAL for r in records)  # still stalled at the next check
    dump = records[0].getMessage()
    assert "block_the_loop" in dump
    assert "time.sleep(seconds)" in dump
    assert "jobs being handled: job-42" in dump
    assert sum("jobs being handled" in r.getMessage() for r in records) == 1  # once a minute
    await asyncio.sleep(0.2)
    assert watchdog.health.state == "ok"  # it keeps watching, and the loop is fine again
    beats.cancel()
    await asyncio.gather(beats, return_exceptions=True)


async def test_lag_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    watchdog = Watchdog(beat_s=0.02, check_s=10, lag_warn_s=0.1, stall_s=5)
    beats = asyncio.create_task(watchdog.beat())
    await asyncio.sleep(0.05)
    block_the_loop(0.3)
    await asyncio.sleep(0.05)
    with caplog.at_level(logging.WARNING, logger="jobpulse.watchdog"):
        assert watchdog.check().state == "lagging"
    assert "lagging" in caplog.text
    beats.cancel()
    await asyncio.gather(beats, return_exceptions=True)


async def test_healthz_reports_the_loop(http: httpx.AsyncClient, app: FastAPI) -> None:
    body = (await http.get("/healthz")).json()
    assert (body["status"], body["event_loop"]) == ("ok", "ok")
    watchdog = app.state.watchdog
    watchdog.last_beat -= 60  # as if the loop had not beaten for a minute
    watchdog.check()
    body = (await http.get("/healthz")).json()
    assert body["event_loop"] == "stalled"
    assert body["event_loop_lag_s"] >= 60
    metrics = (await http.get("/metrics")).text
    assert "jobpulse_event_loop_lag_seconds" in metrics
