"""The read gate: turns per process and per organization, a short wait, then 429."""

from __future__ import annotations

import asyncio
import time

import pytest

from jobpulse.errors import TooManyRequestsError
from jobpulse.gate import ReadGate


async def _hold(gate: ReadGate, organization: str, held: asyncio.Event, go: asyncio.Event) -> None:
    async with gate.turn(organization):
        held.set()
        await go.wait()


async def test_an_organization_past_its_turns_waits_then_is_told_to_retry() -> None:
    gate = ReadGate(process_max=3, organization_max=1, wait_s=0.05)
    held, go = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold(gate, "org-a", held, go))
    await held.wait()
    with pytest.raises(TooManyRequestsError) as refused:
        async with gate.turn("org-a"):
            pytest.fail("org-a had no turn left")
    assert refused.value.code == "too_many_requests"
    assert refused.value.retry_after_s == 1
    assert refused.value.details == {"retry_after_s": 1}
    async with gate.turn("org-b"):  # another organization has turns of its own
        pass
    go.set()
    await holder
    async with gate.turn("org-a"):  # given back
        pass


async def test_a_waiting_read_takes_the_turn_given_back() -> None:
    gate = ReadGate(process_max=1, organization_max=1, wait_s=5)
    held, go = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold(gate, "org-a", held, go))
    await held.wait()
    next_held, next_go = asyncio.Event(), asyncio.Event()
    waiting = asyncio.create_task(_hold(gate, "org-b", next_held, next_go))
    await asyncio.sleep(0.01)
    assert not next_held.is_set()  # the process's one turn is taken
    go.set()
    await holder
    await asyncio.wait_for(next_held.wait(), 1)
    next_go.set()
    await waiting


async def test_the_process_bounds_every_organization_together() -> None:
    gate = ReadGate(process_max=2, organization_max=2, wait_s=0)
    go = asyncio.Event()
    holders = []
    for organization in ("org-a", "org-b"):
        held = asyncio.Event()
        holders.append(asyncio.create_task(_hold(gate, organization, held, go)))
        await held.wait()
    with pytest.raises(TooManyRequestsError, match="2 in all"):
        async with gate.turn("org-c"):
            pass
    go.set()
    await asyncio.gather(*holders)


async def test_organizations_are_forgotten_once_idle() -> None:
    gate = ReadGate(process_max=2, organization_max=1, wait_s=0)
    for number in range(100):
        async with gate.turn(f"org-{number}"):
            pass
    with pytest.raises(TooManyRequestsError):
        async with gate.turn("org-x"), gate.turn("org-x"):
            pass
    assert gate._organizations == {}  # nothing kept for organizations that went away


@pytest.mark.parametrize("busy", [True, False])
async def test_while_changes_are_written_a_turn_rests_before_the_next_read(busy: bool) -> None:
    """A read's answer is not held back; the next read of the organization waits as long
    again as the last one took (share 0.5), and only while changes are being written.
    """
    gate = ReadGate(process_max=2, organization_max=1, wait_s=5, share=0.5, busy=lambda: busy)
    began = time.monotonic()
    async with gate.turn("org-a"):
        await asyncio.sleep(0.2)
    answered = time.monotonic()
    assert answered - began < 0.3  # the read's own answer goes out at once
    async with gate.turn("org-b"):  # another organization's turn does not wait
        assert time.monotonic() - answered < 0.1
    async with gate.turn("org-a"):
        waited = time.monotonic() - answered
    if busy:
        assert 0.18 <= waited < 0.5, waited
    else:
        assert waited < 0.1, waited
    await asyncio.sleep(0.3)
    assert gate._organizations == {}  # every turn given back, nothing kept per organization


async def test_a_resting_turn_still_counts_against_the_process() -> None:
    gate = ReadGate(process_max=1, organization_max=1, wait_s=0, share=0.5, busy=lambda: True)
    async with gate.turn("org-a"):
        await asyncio.sleep(0.1)
    with pytest.raises(TooManyRequestsError):
        async with gate.turn("org-b"):
            pytest.fail("the process's one turn is resting")
    await asyncio.sleep(0.15)
    async with gate.turn("org-b"):
        pass
