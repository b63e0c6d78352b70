"""The write endpoints over real HTTP: every write needs the token (401 records nothing),
operator commands are recorded as the CLI records them and acted on at once, a sync wakes
the branch's loop."""

from __future__ import annotations

import pytest

from engine.events.function import OperatorRequested
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import finished, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
SLOW_CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 600}
WRITES = (
    ("/api/v1/functions/orders/abort", {"reason": "r"}),
    ("/api/v1/functions/orders/promote", {"reason": "r"}),
    ("/api/v1/functions/orders/retry", {"reason": "r"}),
    ("/api/v1/commits/0123456789abcdef/allow-deletes", {"reason": "r"}),
    ("/api/v1/sync", {"repository": "x"}),
    ("/api/v1/commits/deploy", {"repo_url": "x", "branch": "main"}),
)


async def test_a_write_without_the_right_token_is_401_and_records_nothing(setup: Setup) -> None:
    """No token, a wrong one, a token as a query parameter: 401 for every write, and the log
    is what it was; with no token configured at all, writes are 401 too."""
    write_function(setup.repo, setup.outputs, traffic=SLOW_CANARY)
    setup.repo.commit("add orders")
    async with serving(setup) as srv:
        await srv.wait_for(lambda r: r.type == "TimerStarted")
        before = await srv.engine.store.last_position()
        ops_before = await srv.engine.store.stream_version(OPS_STREAM)
        for path, body in WRITES:
            for token in (None, "wrong", "s3cret-token-but-longer", ""):
                status, answer = await srv.post(path, body, token=token)
                assert status == 401, (path, token, answer)
            status, _ = await srv.post(path + "?token=s3cret-token", body, token=None)
            assert status == 401
        assert await srv.engine.store.stream_version(OPS_STREAM) == ops_before
        after = [r for r in await srv.log() if r.position > before]
        assert not [r for r in after if r.stream == OPS_STREAM or r.meta.actor != "engine"]
    async with serving(setup, api_token=None) as srv:
        status, answer = await srv.post("/api/v1/functions/orders/abort", {"reason": "r"})
        assert status == 401
        assert "none is configured" in answer["error"]


async def test_abort_through_the_api_rolls_the_canary_back_as_the_cli_would(
    setup: Setup,
) -> None:
    """An abort posted while a canary bakes for ten minutes rolls it back at once, recorded as
    one OperatorCommandIssued with actor and reason (as ``glam abort``), handed over once; a
    repeat with the same Idempotency-Key records nothing new; commands that cannot act are
    409, unknown targets 404, a missing reason 400."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup, ops_poll=30.0) as srv:
        await srv.wait_for(finished(1))
        status, answer = await srv.post(f"/api/v1/functions/{NAME}/abort", {"reason": "r"})
        assert status == 409
        assert "nothing in flight" in answer["error"]
        assert (await srv.post("/api/v1/functions/nope/abort", {"reason": "r"}))[0] == 404
        assert (await srv.post(f"/api/v1/functions/{NAME}/abort", {}))[0] == 400
        assert (await srv.post(f"/api/v1/functions/{NAME}/abort", {"reason": " "}))[0] == 400
        assert (await srv.post(f"/api/v1/functions/{NAME}/retry", {"reason": "r"}))[0] == 409
        status, answer = await srv.post(
            "/api/v1/commits/0123456789abcdef/allow-deletes", {"reason": "r"}
        )
        assert status == 409

        write_function(setup.repo, setup.outputs, code="green", traffic=SLOW_CANARY)
        setup.repo.commit("green")
        await srv.wait_for(lambda r: r.type == "TrafficShifted" and r.event.weight > 0)  # type: ignore[union-attr]
        key = {"Idempotency-Key": "ci-run-41"}
        body = {"reason": "p99 doubled", "actor": "ci"}
        status, answer = await srv.post(f"/api/v1/functions/{NAME}/abort", body, headers=key)
        assert status == 202, answer
        assert (answer["command"], answer["actor"]) == ("abort", "ci")
        # ops_poll is 30 s: only the wake-up makes the engine act within the wait below.
        done = await srv.wait_for(finished(2), within=20)
        assert done.event.outcome == "rolled_back"  # type: ignore[union-attr]
        assert done.event.reason.startswith("aborted by ci: p99 doubled")  # type: ignore[union-attr]
        again = await srv.post(f"/api/v1/functions/{NAME}/abort", body, headers=key)
        assert again == (202, answer)
        log = await srv.log()
        issued = [r for r in log if isinstance(r.event, OperatorCommandIssued)]
        assert len(issued) == 1
        [command] = issued
        event = command.event
        assert isinstance(event, OperatorCommandIssued)
        assert (command.meta.actor, event.reason, event.command) == ("ci", "p99 doubled", "abort")
        assert event.deployment_id == answer["deployment_id"]
        handed = [r for r in log if isinstance(r.event, OperatorRequested)]
        assert [r.meta.causation_id for r in handed] == [command.meta.event_id]


async def test_sync_wakes_the_branch_loop(setup: Setup) -> None:
    """With a poll of an hour, a commit is deployed only because ``POST /api/v1/sync`` woke
    the loop; an unknown repository or branch is 404, a missing one 400."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup, poll=3600.0) as srv:
        await srv.wait_for(finished(1))
        write_function(setup.repo, setup.outputs, code="green", traffic=FAST)
        sha = setup.repo.commit("green")
        body = {"repository": str(setup.repo.path), "branch": "main"}
        status, answer = await srv.post("/api/v1/sync", body)
        assert status == 202
        assert answer["syncing"].endswith("#main")
        done = await srv.wait_for(finished(2), within=30)
        assert done.meta.commit == sha
        assert (await srv.post("/api/v1/sync", {"repository": "/elsewhere"}))[0] == 404
        other = {"repository": str(setup.repo.path), "branch": "dev"}
        assert (await srv.post("/api/v1/sync", other))[0] == 404
        assert (await srv.post("/api/v1/sync", {}))[0] == 400
        status, _ = await srv.request("POST", "/api/v1/sync", data=b"{not json")
        assert status == 400
