"""The movable clock: every timer of the embedded AWS passes when the clock is moved, over the
control endpoint or ``advance_clock``, so tests never wait in real time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import anyio
import pytest
from botocore.exceptions import ClientError

from engine.local import Fidelity, LocalAwsThread
from engine.local.clock import MAX_ADVANCE, MovableClock
from tests.local.conftest import Clients, make_function, open_clients

pytestmark = pytest.mark.anyio


def test_advance_moves_forward_only() -> None:
    """The reading is base + offset; advance adds to it and never takes away."""
    base = [10.0]
    clock = MovableClock(lambda: base[0])
    assert clock() == 10.0
    assert clock.advance(2.5) == 12.5
    base[0] = 11.0
    assert (clock(), clock.offset) == (13.5, 2.5)
    for bad in (-1, float("nan"), float("inf"), MAX_ADVANCE + 1, "3", True):
        with pytest.raises(ValueError):
            clock.advance(bad)  # type: ignore[arg-type]
    assert clock.offset == 2.5


async def test_sleep_ends_when_the_clock_passes_it() -> None:
    """A sleep of an hour returns as soon as the clock is moved an hour on."""
    clock = MovableClock(lambda: 0.0)
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep, 3600)
        await anyio.sleep(0.05)
        clock.advance(1800)
        await anyio.sleep(0.05)
        clock.advance(1800)
    assert time.perf_counter() - started < 2


async def test_sleep_takes_real_time_without_a_move() -> None:
    """Unmoved, a sleep lasts its real duration (latency faults still delay)."""
    clock = MovableClock()
    started = time.perf_counter()
    await clock.sleep(0.2)
    assert time.perf_counter() - started >= 0.2


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.integration
async def test_clock_endpoint(aws: LocalAwsThread, http: aiohttp.ClientSession) -> None:
    """GET reads the clock; POST {"advance": s} moves it and answers the new reading; a
    move back or a malformed body is 400 and moves nothing."""
    url = aws.endpoint_url + "/_glam/clock"
    async with http.get(url) as resp:
        before = await resp.json()
    async with http.post(url, json={"advance": 7.5}) as resp:
        assert resp.status == 200
        after = await resp.json()
    assert after["now"] == pytest.approx(before["now"] + 7.5)
    assert after["offset"] == pytest.approx(before["offset"] + 7.5)
    for body in ({"advance": -1}, {"advance": "1"}, {"advance": 1e12}, {"back": 1}, {}):
        async with http.post(url, json=body) as resp:
            assert resp.status == 400, body
    async with http.get(url) as resp:
        assert (await resp.json())["offset"] == after["offset"]
    assert aws.clock.offset == after["offset"]


@pytest.mark.integration
async def test_pending_passes_with_the_clock(
    local_aws: LocalAwsThread, http: aiohttp.ClientSession
) -> None:
    """On the real clock (the session's embedded AWS), a new function is Pending and turns
    Active as soon as the clock is moved over HTTP, without waiting the 30 s in real time."""
    local_aws.set_fidelity(Fidelity(pending_seconds=30, update_seconds=30))
    async with AsyncExitStack() as stack:
        c = await open_clients(stack, local_aws.endpoint_url)
        await make_function(c)
        got = await c.lambda_.get_function(FunctionName="fn")
        assert got["Configuration"]["State"] == "Pending"
        seconds = local_aws.fidelity.pending_seconds
        async with http.post(
            local_aws.endpoint_url + "/_glam/clock", json={"advance": seconds}
        ) as resp:
            assert resp.status == 200
        got = await c.lambda_.get_function(FunctionName="fn")
        assert got["Configuration"]["State"] == "Active"
        await c.lambda_.update_function_configuration(FunctionName="fn", Timeout=5)
        with pytest.raises(ClientError, match="ResourceConflictException"):
            await c.lambda_.publish_version(FunctionName="fn")
        local_aws.advance_clock(local_aws.fidelity.update_seconds)
        assert (await c.lambda_.publish_version(FunctionName="fn"))["Version"] == "1"


@pytest.mark.integration
async def test_quota_window_passes_with_the_clock(aws: LocalAwsThread, clients: Clients) -> None:
    """The quota's one-second window is the clock's: full at 15, open again once moved."""
    await make_function(clients)
    for _ in range(14):
        await clients.lambda_.list_aliases(FunctionName="fn")
    with pytest.raises(ClientError, match="TooManyRequestsException"):
        await clients.lambda_.list_aliases(FunctionName="fn")
    aws.advance_clock(1)
    await clients.lambda_.list_aliases(FunctionName="fn")
    # The refused attempt counts in the journal's window (16), the later call in the next one.
    assert [e.status for e in aws.journal.calls("ListAliases")][-2:] == [429, 200]
    assert aws.journal.max_rate("control") == 16


@pytest.mark.integration
async def test_latency_fault_ends_when_the_clock_moves(
    aws: LocalAwsThread, clients: Clients, http: aiohttp.ClientSession
) -> None:
    """A call delayed by a 60 s latency fault is answered as soon as the clock is moved past
    it, and the journal shows the clock's time for it."""
    aws.set_faults("ListFunctions:latency=60s")
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clients.lambda_.list_functions)
        await anyio.sleep(0.3)
        async with http.post(aws.endpoint_url + "/_glam/clock", json={"advance": 60}) as resp:
            assert resp.status == 200
    assert time.perf_counter() - started < 10
    (entry,) = aws.journal.calls("ListFunctions")
    assert entry.status == 200


@pytest.mark.integration
async def test_reset_keeps_the_clock(aws: LocalAwsThread) -> None:
    """A reset empties everything but never moves the clock back."""
    aws.advance_clock(100)
    offset = aws.clock.offset
    aws.reset()
    assert aws.clock.offset == offset
