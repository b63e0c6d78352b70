"""The dashboard's operator buttons over real HTTP, without a browser: a form post gives the
command as the CLI does, and the engine acts on it at once; without the session it is refused
and nothing is recorded."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from engine.events import RecordedEvent
from engine.events.function import TrafficShifted
from engine.events.operator import OperatorCommandIssued
from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import API_TOKEN, finished, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SLOW_CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 600}


def _full(after: int) -> Callable[[RecordedEvent], bool]:
    def test(record: RecordedEvent) -> bool:
        event = record.event
        return record.position > after and isinstance(event, TrafficShifted) and event.weight == 1

    return test


async def test_a_promote_posted_from_the_page_cuts_a_long_canary_short(setup: Setup) -> None:
    """Signed in with the token, a promote posted from the dashboard's own origin is recorded
    with actor ``dashboard`` and its reason and cuts a ten-minute canary short: the new
    version gets all the traffic at once (its last bake follows); the same post
    without the session cookie is 401 with the reason and records nothing."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("add orders")
    async with serving(setup, ops_poll=30.0) as srv:
        await srv.wait_for(finished(1))
        before = await srv.engine.store.last_position()
        write_function(setup.repo, setup.outputs, code="green", traffic=SLOW_CANARY)
        setup.repo.commit("green")
        baking = await srv.wait_for(lambda r: r.type == "TimerStarted" and r.position > before)
        stream = baking.stream
        page = f"{srv.url}/dashboard/functions/{quote(stream)}"
        origin = {"Origin": srv.url}
        form = {"reason": "p99 is flat"}
        async with srv.http.post(
            f"{page}/promote", data=form, headers=origin, allow_redirects=False
        ) as answer:
            assert answer.status == 401
            assert "sign in with the API token" in await answer.text()
        assert not [r for r in await srv.log() if isinstance(r.event, OperatorCommandIssued)]
        async with srv.http.post(
            f"{srv.url}/dashboard/sign-in",
            data={"token": API_TOKEN, "next": "/dashboard/"},
            headers=origin,
            allow_redirects=False,
        ) as answer:
            assert answer.status == 303
            cookie = answer.cookies["glam_session"]
            assert cookie["httponly"]
            assert cookie["samesite"] == "Strict"
            assert API_TOKEN not in cookie.value
        # (aiohttp's jar keeps no cookie of an IP address: the test hands it on itself.)
        session = {**origin, "Cookie": f"glam_session={cookie.value}"}
        async with srv.http.post(
            f"{page}/promote", data=form, headers=session, allow_redirects=False
        ) as answer:
            assert answer.status == 303, await answer.text()
            assert "done=promote" in answer.headers["Location"]
        # ops_poll is 30 s: only the wake-up makes the engine act within the wait below.
        await srv.wait_for(_full(before), within=20)
        [issued] = [r for r in await srv.log() if isinstance(r.event, OperatorCommandIssued)]
        assert issued.meta.actor == "dashboard"
        assert issued.event.reason == "p99 is flat"  # type: ignore[union-attr]
        assert NAME in stream
