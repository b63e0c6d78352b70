"""Holds over real HTTP: ``POST /api/v1/functions/{fn}/hold``, ``/extend`` and ``/resume``
need the token (401 records nothing) and act as ``glam hold``, ``extend`` and ``resume`` do."""

from __future__ import annotations

import pytest

from engine.events.function import BakeExtended, DeploymentHeld, DeploymentResumed
from engine.events.operator import OPS_STREAM
from tests.builders import events_of
from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
SLOW_CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 600}


async def test_hold_extend_and_resume_through_the_api(setup: Setup) -> None:
    """While a ten-minute canary bakes: a hold without the token is 401 and records nothing;
    with it, 202 and the deployment is held (actor and reason kept); an extend ``by`` 10m
    lengthens what the hold left; a resume lifts the hold; a second resume is 409."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    write_function(setup.repo, setup.outputs, code="green", traffic=SLOW_CANARY)
    async with serving(setup) as srv:
        await srv.wait_for(lambda r: r.type == "DeploymentFinished")
        setup.repo.commit("green")
        await srv.wait_for(lambda r: r.type == "TimerStarted" and r.event.purpose == "bake")  # type: ignore[union-attr]
        hold = f"/api/v1/functions/{NAME}/hold"
        body = {"reason": "watching p99", "actor": "ci"}
        ops_before = await srv.engine.store.stream_version(OPS_STREAM)
        for token in (None, "wrong"):
            assert (await srv.post(hold, body, token=token))[0] == 401
        assert await srv.engine.store.stream_version(OPS_STREAM) == ops_before

        status, answer = await srv.post(hold, body)
        assert status == 202, answer
        assert (answer["command"], answer["actor"]) == ("hold", "ci")
        held = await srv.wait_for(lambda r: r.type == "DeploymentHeld", within=20)
        assert isinstance(held.event, DeploymentHeld)
        assert (held.event.actor, held.event.reason) == ("ci", "watching p99")

        extend = f"/api/v1/functions/{NAME}/extend"
        assert (await srv.post(extend, {"reason": "r"}))[0] == 400  # no length
        status, answer = await srv.post(extend, {"reason": "quiet night", "by": "10m"})
        assert status == 202, answer
        assert answer["seconds"] == 600
        extended = await srv.wait_for(lambda r: r.type == "BakeExtended", within=20)
        assert isinstance(extended.event, BakeExtended)
        assert (extended.event.seconds, extended.event.until) == (600, None)

        resume = f"/api/v1/functions/{NAME}/resume"
        status, answer = await srv.post(resume, {"reason": "p99 fine"})
        assert status == 202, answer
        resumed = await srv.wait_for(lambda r: r.type == "DeploymentResumed", within=20)
        assert isinstance(resumed.event, DeploymentResumed)
        status, answer = await srv.post(resume, {"reason": "again"})
        assert status == 409
        assert "not held" in answer["error"]
        log = await srv.log()
        assert len(events_of(log, DeploymentHeld)) == len(events_of(log, DeploymentResumed)) == 1
