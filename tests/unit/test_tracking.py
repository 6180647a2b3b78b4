"""The SDK's synchronous tracker (`client.track`, `client.track_stream`) against the real app
on loopback: what the job shows for each way a run ends, heartbeats and cancellation, and that
the tracked code goes on, its own result or exception untouched, when jobpulse answers an error
or cannot be reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from jobpulse.client import JobCancelled, JobPulse
from jobpulse.public import JobPublic
from tests.served import ENDED, NOWHERE, Faults, Served

pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def client(served: Served, secret: str, faults: Faults) -> Iterator[JobPulse]:
    """The client of the tracked code, whose requests `faults` may fail."""
    with JobPulse(served.url, secret, transport=faults) as tracking:
        yield tracking


@pytest.fixture
def reader(served: Served, secret: str) -> Iterator[JobPulse]:
    """A client that sees the jobs as the user does."""
    with JobPulse(served.url, secret) as reading:
        yield reading


def the_job(reader: JobPulse, job_type: str) -> JobPublic:
    [job] = reader.list_jobs(job_type=job_type)
    return job


def terminal(reader: JobPulse, job_id: str) -> list[tuple[str, str | None]]:
    """The job's applied terminal events: (status, stop reason)."""
    return [
        (event.to_status, event.stop_reason)
        for event in reader.list_events(job_id)
        if event.applied and event.to_status in ENDED
    ]


def test_a_block_that_ends_completes_its_job(client: JobPulse, reader: JobPulse) -> None:
    with client.track(job_type="agent", metadata={"source_id": "a-7"}, timeout_s=60) as run:
        assert run.job is not None
        assert run.job.status == "running"
        time.sleep(0.05)
        run.first_token()
        time.sleep(0.05)
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason, job.metadata) == ("completed", None, {"source_id": "a-7"})
    assert job.ttft_ns is not None
    assert job.total_duration_ns is not None
    assert 50_000_000 <= job.ttft_ns < job.total_duration_ns
    assert job.total_duration_ns >= 100_000_000
    assert job.deadline_at is not None
    assert [(e.from_status, e.to_status) for e in reader.list_events(job.id)] == [
        (None, "running"),
        ("running", "completed"),
    ]


def test_a_decorated_function_returns_its_result(client: JobPulse, reader: JobPulse) -> None:
    @client.track(job_type="report")
    def build(rows: int) -> list[int]:
        return list(range(rows))

    assert build(3) == [0, 1, 2]
    assert build(1) == [0]
    jobs = reader.list_jobs(job_type="report")
    assert [job.status for job in jobs] == ["completed", "completed"]  # one job per call


def test_an_exception_fails_the_job_and_goes_on_unchanged(
    client: JobPulse, reader: JobPulse
) -> None:
    error = ValueError("the model said no")
    with (
        pytest.raises(ValueError, match="the model said no") as raised,
        client.track(job_type="flaky", metadata={"k": 1}),
    ):
        raise error
    assert raised.value is error
    job = the_job(reader, "flaky")
    assert (job.status, job.stop_reason) == ("failed", "error")
    assert job.metadata == {
        "k": 1,
        "error_type": "ValueError",
        "error_message": "the model said no",
    }
    assert terminal(reader, job.id) == [("failed", "error")]


def test_an_interrupt_cancels_the_job(client: JobPulse, reader: JobPulse) -> None:
    with pytest.raises(KeyboardInterrupt), client.track(job_type="interrupted"):
        raise KeyboardInterrupt
    job = the_job(reader, "interrupted")
    assert (job.status, job.stop_reason) == ("cancelled", "cancelled")


def test_heartbeats_keep_the_job_alive(client: JobPulse, reader: JobPulse) -> None:
    with client.track(job_type="beating", heartbeat_s=0.05) as run:
        assert run.job is not None
        assert run.job.heartbeat_timeout_s == pytest.approx(0.15)
        time.sleep(0.3)
        beaten = reader.get_job(run.job.id)
        run.heartbeat(step=3, of=10)
        progressed = reader.get_job(run.job.id)
    assert beaten.heartbeat_at is not None
    assert beaten.heartbeat_at > beaten.created_at
    assert progressed.metadata == {"step": 3, "of": 10}
    assert reader.get_job(run.job.id).status == "completed"


def test_a_stream_records_its_first_item_as_the_first_token(
    client: JobPulse, reader: JobPulse
) -> None:
    def chunks() -> Iterator[str]:
        time.sleep(0.05)
        yield "Hel"
        time.sleep(0.05)
        yield "lo"

    assert list(client.track_stream(chunks(), job_type="streamed")) == ["Hel", "lo"]
    job = the_job(reader, "streamed")
    assert job.status == "completed"
    assert job.ttft_ns is not None
    assert job.total_duration_ns is not None
    assert 50_000_000 <= job.ttft_ns < job.total_duration_ns

    def broken() -> Iterator[str]:
        yield "a"
        raise ConnectionResetError("the model hung up")

    with pytest.raises(ConnectionResetError):
        list(client.track_stream(broken(), job_type="broken"))
    failed = the_job(reader, "broken")
    assert (failed.status, failed.metadata["error_type"]) == ("failed", "ConnectionResetError")


def test_a_cancel_through_the_api_stops_the_run_at_its_next_heartbeat(
    client: JobPulse, reader: JobPulse
) -> None:
    with client.track(job_type="long", heartbeat_s=0.05) as run:
        assert run.job is not None
        reader.cancel_job(run.job.id, reason="not needed")
        deadline = time.monotonic() + 5
        while not run.cancelled:
            assert time.monotonic() < deadline, "the run never heard of its cancel"
            time.sleep(0.01)
        with pytest.raises(JobCancelled):
            run.raise_if_cancelled()
        with pytest.raises(JobCancelled):
            run.first_token()
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason, job.ttft_ns) == ("cancelled", "cancelled", None)
    assert terminal(reader, job.id) == [("cancelled", "cancelled")]  # not reported twice


def test_a_failed_end_report_is_logged_and_the_result_kept(
    client: JobPulse, reader: JobPulse, faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    faults.unavailable.add(("PATCH", "/v1/jobs/"))

    @client.track(job_type="unreported")
    def work() -> str:
        return "done"

    with caplog.at_level(logging.WARNING, "jobpulse.tracking"):
        assert work() == "done"
    assert faults.failed
    assert the_job(reader, "unreported").status == "running"  # what jobpulse could not hear
    assert f"a report on {the_job(reader, 'unreported').id} failed" in caplog.text
    error = KeyError("mine")
    with pytest.raises(KeyError) as raised, client.track(job_type="unreported-failure"):
        raise error
    assert raised.value is error  # never the report's error in its place


def test_failed_heartbeats_are_logged_and_the_run_goes_on(
    client: JobPulse, reader: JobPulse, faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    faults.unavailable.add(("POST", "/heartbeat"))
    with caplog.at_level(logging.WARNING, "jobpulse.tracking"):
        with client.track(job_type="deaf", heartbeat_s=0.02) as run:
            time.sleep(0.15)
        assert run.job is not None
    assert len(faults.failed) >= 2  # it kept trying
    assert "heartbeat for" in caplog.text
    assert reader.get_job(run.job.id).status == "completed"


def test_a_deleted_job_is_logged_not_raised(
    client: JobPulse, reader: JobPulse, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, "jobpulse.tracking"),
        client.track(job_type="deleted", heartbeat_s=0.02) as run,
    ):
        assert run.job is not None
        reader.delete_job(run.job.id)
        time.sleep(0.1)  # heartbeats answered 404
    assert "not found" in caplog.text
    assert reader.list_jobs(job_type="deleted") == []


def test_calls_of_the_run_that_fail_are_logged_not_raised(
    client: JobPulse, reader: JobPulse, faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    faults.unavailable |= {("POST", "/first-token"), ("POST", "/heartbeat")}
    with (
        caplog.at_level(logging.WARNING, "jobpulse.tracking"),
        client.track(job_type="calls") as run,
    ):
        run.first_token()
        run.heartbeat(step=1)
        run.update(metadata={"model": "m"}, status="bogus")  # refused: 422
        run.update(metadata={"model": "m"})
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.ttft_ns, job.metadata) == ("completed", None, {"model": "m"})
    assert caplog.text.count(f"a report on {job.id} failed") == 3


def test_a_run_goes_on_untracked_when_jobpulse_cannot_be_reached(
    secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    with JobPulse(NOWHERE, secret) as nowhere:

        @nowhere.track(job_type="offline", heartbeat_s=0.02)
        def work(value: int) -> int:
            return value * 2

        with caplog.at_level(logging.WARNING, "jobpulse.tracking"):
            assert work(21) == 42
            with nowhere.track(job_type="offline") as run:
                run.first_token()
                run.heartbeat()
            assert (run.job, run.id, run.cancelled) == (None, None, False)
            with pytest.raises(ZeroDivisionError), nowhere.track(job_type="offline"):
                _ = 1 / 0
            assert list(nowhere.track_stream(iter("ab"), job_type="offline")) == ["a", "b"]
    assert "untracked" in caplog.text


def test_a_refused_job_runs_untracked(
    client: JobPulse, reader: JobPulse, caplog: pytest.LogCaptureFixture
) -> None:
    ran = []
    with (
        caplog.at_level(logging.WARNING, "jobpulse.tracking"),
        client.track(job_type="x" * 200) as run,  # 422: job_type is too long
    ):
        ran.append(run.id)
    assert ran == [None]
    assert "untracked" in caplog.text
    assert reader.list_jobs() == []
