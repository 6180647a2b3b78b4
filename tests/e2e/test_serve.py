"""The real thing: `jobpulse serve`, keys from the CLI, the SDK and the CLI driving jobs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from jobpulse.client import AsyncJobPulse, JobPulse
from tests.e2e.conftest import JOBPULSE, Server, cli, close, free_port, start, stop


def chunks() -> Iterator[str]:
    time.sleep(0.05)
    yield from ("Hel", "lo", "!")


def test_jobs_live_through_sdk_and_cli(empty_server: Server) -> None:
    server = empty_server
    key = cli(
        "keys",
        "create",
        "--user",
        "worker",
        "--org",
        "default",
        "--database-url",
        server.database_url,
    )
    [secret] = key.stdout.splitlines()
    assert secret.startswith("jp_")
    listed_keys = cli("keys", "list", "--database-url", server.database_url).stdout
    assert "worker" in listed_keys
    assert secret not in listed_keys

    with JobPulse(server.url, secret) as client:
        with client.track(
            job_type="agent_run", metadata={"source_id": "e2e"}, heartbeat_s=0.1
        ) as run:
            time.sleep(0.05)
            run.first_token()
            time.sleep(0.3)
        assert run.id is not None  # tracked: jobpulse created its job
        tracked = client.get_job(run.id)
        assert (tracked.status, tracked.job_type) == ("completed", "agent_run")
        assert tracked.heartbeat_at is not None
        assert tracked.ttft_ns is not None
        assert tracked.total_duration_ns is not None
        assert 0 < tracked.ttft_ns < tracked.total_duration_ns

        @client.track(job_type="summarize")
        def flaky() -> None:
            raise ValueError("the model said no")

        with pytest.raises(ValueError, match="the model said no"):
            flaky()
        [failed] = client.list_jobs(job_type="summarize")
        assert (failed.status, failed.stop_reason) == ("failed", "error")
        assert failed.metadata == {"error_type": "ValueError", "error_message": "the model said no"}

        streamed = list(client.track_stream(chunks(), job_type="stream"))
        assert streamed == ["Hel", "lo", "!"]
        [stream_job] = client.list_jobs(job_type="stream")
        assert stream_job.status == "completed"
        assert stream_job.ttft_ns is not None
        assert stream_job.ttft_ns >= 50_000_000

        again = client.update_job(tracked.id, status="completed")  # a worker repeating itself
        assert again.completed_at == tracked.completed_at
        assert {job.id for job in client.iter_jobs(limit=1)} == {
            tracked.id,
            failed.id,
            stream_job.id,
        }

    async def cancelled_run() -> str:
        async with AsyncJobPulse(server.url, secret) as client:
            started = asyncio.Event()
            job_ids: list[str] = []

            @client.track(job_type="long")
            async def long_run() -> None:
                [job] = await client.list_jobs(job_type="long", active=True)
                job_ids.append(job.id)
                started.set()
                await asyncio.sleep(30)

            task = asyncio.create_task(long_run())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            job = await client.get_job(job_ids[0])
            return f"{job.status} {job.stop_reason}"

    assert asyncio.run(cancelled_run()) == "cancelled cancelled"

    options = ["--url", server.url, "--key", secret]
    table = cli("jobs", "list", *options, "--job-type", "agent_run").stdout
    assert tracked.id in table
    assert "completed" in table
    with JobPulse(server.url, secret) as client:
        pending = client.create_job(job_type="cli", status="pending")
    assert "cancelled" in cli("jobs", "cancel", pending.id, *options).stdout
    refused = cli("jobs", "cancel", pending.id, *options)  # already cancelled: still fine
    assert refused.returncode == 0
    shown = json.loads(cli("jobs", "show", pending.id, *options).stdout)
    assert (shown["status"], shown["stop_reason"]) == ("cancelled", "cancelled")
    events = cli("jobs", "events", tracked.id, *options).stdout
    assert "running" in events
    assert "completed" in events
    assert "REJECTED" in events  # the repeated "completed" is kept as a rejected attempt
    missing = cli("jobs", "show", "job-nope", *options, check=False)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    bad_key = cli("jobs", "list", "--url", server.url, "--key", "jp_wrong", check=False)
    assert bad_key.returncode == 1
    assert "invalid or revoked" in bad_key.stderr

    assert stop(server) == 0


def test_second_start_prints_no_new_key(empty_server: Server) -> None:
    assert stop(empty_server) == 0
    again = start(empty_server.database_url, expect_key=False)
    assert stop(again) == 0
    close(again)
    assert not any("Admin API key" in line for line in again.output)


#: A line of the demo's summary that counts one way jobs ended ("completed: 12").
OUTCOME = re.compile(r"^\s*([a-z ]+): (\d+)$", re.MULTILINE)


def test_demo_fills_a_server_with_a_living_workload(empty_server: Server) -> None:
    options = ["--url", empty_server.url, "--key", empty_server.admin_key, "--batches", "1"]
    summary = cli("demo", *options, "--jobs", "30", "--speed", "40").stdout
    counts = {name.strip(): int(number) for name, number in OUTCOME.findall(summary)}
    assert sum(counts.values()) == 30, summary
    assert counts.get("completed", 0) > 0
    assert re.search(r"steps: [1-9]\d* recorded", summary), summary
    calls = re.search(r"LLM calls: ([1-9]\d*) recorded \(([\d,]+) tokens\)", summary)
    assert calls, summary
    # This server neither polls the demo's provider nor calls loopback: the summary says
    # so, and the batch's job is not left following a provider that is gone.
    assert "never polled the demo's batch provider" in summary
    assert "JOBPULSE_WEBHOOK_ALLOW_PRIVATE=true" in summary
    with JobPulse(empty_server.url, empty_server.admin_key) as client:
        total = client.count_jobs()
        assert total.total == 31
        assert total.by_status["completed"] == counts["completed"]
        assert total.by_status["running"] == counts.get("silent", 0)
        kinds = {job.job_type for job in client.iter_jobs(limit=100)}
        assert len(kinds) > 1
        finished = client.list_jobs(status=["completed"], limit=1)[0]
        assert finished.ttft_ns is not None
        assert finished.total_duration_ns is not None
        assert client.list_jobs(job_type="llm_batch")[0].status == "cancelled"
    # Its LLM calls, as the dashboard's usage panels read them: the summary's count and tokens.
    headers = {"Authorization": f"Bearer {empty_server.admin_key}"}
    usage = httpx.get(f"{empty_server.url}/v1/stats", headers=headers).json()["usage"]
    assert usage["calls"] == int(calls[1])
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    assert sum(usage[kind] for kind in tokens) == int(calls[2].replace(",", ""))
    assert usage["cost_usd"] > 0


def test_demo_makes_callbacks_steps_and_batches_and_outlives_a_cancel(
    empty_database_url: str,
) -> None:
    port = free_port()
    env = {
        "JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true",
        "JOBPULSE_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_API_KEY": "demo",
        "JOBPULSE_BATCH_POLL_INTERVAL_S": "0.5",
    }
    server = start(empty_database_url, env=env)
    try:
        options = ["--url", server.url, "--key", server.admin_key, "--provider-port", str(port)]
        demo = subprocess.Popen(
            [JOBPULSE, "demo", *options, "--jobs", "24", "--speed", "20", "--batches", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Cancel one of its running jobs, as someone on the dashboard would.
        with JobPulse(server.url, server.admin_key) as client:
            deadline = time.monotonic() + 30
            while not (running := client.list_jobs(status=["running"], job_type="agent_run")):
                assert time.monotonic() < deadline, "the demo started no agent run"
                time.sleep(0.1)
            client.cancel_job(running[0].id, reason="from elsewhere")
        out, errors = demo.communicate(timeout=240)
        assert demo.returncode == 0, errors
        assert "Traceback" not in errors
        counts = {name.strip(): int(number) for name, number in OUTCOME.findall(out)}
        assert sum(counts.values()) == 24, out
        assert counts.get("ended elsewhere", 0) >= 1, out
        assert re.search(r"callbacks: [1-9]\d* received \(.*job\.completed", out), out
        with JobPulse(server.url, server.admin_key) as client:
            batches = client.list_jobs(job_type="llm_batch")
            assert len(batches) == 2
            ended = [job for job in batches if job.status == "completed"]
            assert ended, [(job.status, job.metadata) for job in batches]
            assert ended[0].metadata["request_counts"]["succeeded"] > 0
            called = [j for j in client.list_jobs(status=["completed"]) if j.callback_url]
            assert called
            assert all(job.callback_sent_at for job in called)
    finally:
        close(server)


def test_serve_sweeps_expired_jobs(empty_database_url: str) -> None:
    server = start(empty_database_url, env={"JOBPULSE_SWEEP_INTERVAL_S": "0.2"})
    try:
        with JobPulse(server.url, server.admin_key) as client:
            job = client.create_job(status="running", timeout_s=0.5)
            deadline = time.monotonic() + 15
            while client.get_job(job.id).status != "expired":
                assert time.monotonic() < deadline, "the sweeper never expired the job"
                time.sleep(0.1)
            assert client.get_job(job.id).stop_reason == "timeout"
        assert stop(server) == 0
    finally:
        close(server)


def traced_transition(url: str, **env: str) -> tuple[str, str]:
    """What `serve` printed with console tracing (and `env`) for a job created running and
    then completed, once stopped (exiting flushes the batch of spans); and the job's id.
    """
    server = start(url, env={"JOBPULSE_TRACE_CONSOLE": "true", **env})
    try:
        with JobPulse(server.url, server.admin_key) as client:
            job = client.create_job(status="running")
            client.update_job(job.id, status="completed")
        assert stop(server) == 0
        server.reader.join(timeout=10)
        return "".join(server.output), job.id
    finally:
        close(server)


def test_serve_with_console_tracing_prints_one_span_a_request(empty_database_url: str) -> None:
    printed, job_id = traced_transition(empty_database_url)
    request = printed[printed.index('"name": "PATCH /v1/jobs/{job_id}"') :]
    request = request[: request.index('"resource"')]
    assert f'"job.id": "{job_id}"' in request
    assert '"code.function.name": "JobManager.update_job"' in request
    assert '"parameter.status": "completed"' in request
    assert '"name": "JobManager.' not in printed


def test_serve_with_inner_spans_prints_the_service_spans(empty_database_url: str) -> None:
    printed, job_id = traced_transition(empty_database_url, JOBPULSE_TRACE_INNER_SPANS="true")
    request = printed.index('"name": "PATCH /v1/jobs/{job_id}"')
    service = printed.index('"name": "JobManager.update_job"')
    trace_id = printed[request:].split('"trace_id": "')[1][:34]
    assert printed[service:].split('"trace_id": "')[1][:34] == trace_id
    assert f'"job.id": "{job_id}"' in printed


def test_serve_honours_the_sdks_sampler_settings(empty_database_url: str) -> None:
    printed, _job_id = traced_transition(empty_database_url, OTEL_TRACES_SAMPLER="always_off")
    assert '"name": ' not in printed  # no span sampled, none printed


def test_demo_outlives_a_restart_of_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    server = start(url)
    port = urlsplit(server.url).port
    again: subprocess.Popen[bytes] | None = None
    try:
        options = ["--url", server.url, "--key", server.admin_key, "--batches", "0"]
        demo = subprocess.Popen(
            [JOBPULSE, "demo", *options, "--jobs", "24", "--speed", "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with JobPulse(server.url, server.admin_key) as client:
            deadline = time.monotonic() + 30
            while not client.list_jobs(status=["running"]):
                assert time.monotonic() < deadline, "the demo started nothing"
                time.sleep(0.1)
        assert stop(server) == 0  # away for a few seconds, mid-workload
        time.sleep(3)
        again = subprocess.Popen(
            [JOBPULSE, "serve", "--port", str(port), "--database-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out, errors = demo.communicate(timeout=240)
        assert demo.returncode == 0, errors
        assert "Traceback" not in errors
        counts = {name.strip(): int(number) for name, number in OUTCOME.findall(out)}
        assert sum(counts.values()) == 24, out
        assert counts.get("lost", 0) == 0, out  # every job went on after the restart
        assert counts.get("completed", 0) > 0
    finally:
        close(server)
        if again is not None:
            again.terminate()
            again.wait(timeout=30)
