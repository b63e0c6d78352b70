"""The read API over real HTTP against a running engine on the embedded AWS: every endpoint,
its filters, paging, status codes, auth for reads, and no secret in any answer."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.runtime.support import NAME, PREFIX, Setup, write_function
from tests.server.support import SECRET_VALUE, Served, finished, serving, with_environment

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
BILLING, BILLING_PREFIX = "billing", "apps/billing/billing"


async def _deployed(setup: Setup, srv: Served) -> tuple[str, str]:
    """Two functions created by one commit, then orders updated by a second: three
    deployments. The two commits' shas."""
    await srv.wait_for(finished(2))
    write_function(setup.repo, setup.outputs, code="green", traffic=FAST)
    second = setup.repo.commit("orders: green")
    await srv.wait_for(finished(3))
    first = setup.repo.git("rev-parse", "HEAD~1")
    return first, second


def _write_two(setup: Setup) -> None:
    write_function(setup.repo, setup.outputs, traffic=FAST)
    write_function(setup.repo, setup.outputs, traffic=FAST, name=BILLING, prefix=BILLING_PREFIX)
    with_environment(setup, BILLING_PREFIX, {"DB_PASSWORD": SECRET_VALUE})
    setup.repo.commit("add orders and billing")


async def _all_pages(srv: Served, path: str, key: str) -> list[Any]:
    items: list[Any] = []
    cursor = ""
    for _ in range(20):
        sep = "&" if "?" in path else "?"
        status, body = await srv.get(f"{path}{sep}limit=1&cursor={cursor}")
        assert status == 200, body
        items += body[key]
        if "next_cursor" not in body:
            return items
        cursor = body["next_cursor"]
    raise AssertionError("paging did not end")


async def test_every_read_endpoint(setup: Setup) -> None:
    """Functions, deployments (each filter, paging), commits (glam's fields and Gitmoxi's),
    events (since, type, stream) answer what the log says; unknown ones are 404."""
    _write_two(setup)
    async with serving(setup) as srv:
        first, second = await _deployed(setup, srv)

        status, body = await srv.get("/api/v1/functions")
        assert status == 200
        rows = {r["name"]: r for r in body["functions"]}
        assert rows[NAME]["stable_version"] == "2"
        assert rows[BILLING]["stable_version"] == "1"
        assert (await srv.get("/api/v1/functions?name=billing"))[1]["functions"][0]["name"] == (
            BILLING
        )
        status, one = await srv.get(f"/api/v1/functions/{NAME}")
        assert status == 200
        assert one["prefix"] == PREFIX
        assert len(one["deployments"]) == 2
        assert (await srv.get(f"/api/v1/functions/{rows[NAME]['stream']}"))[0] == 200
        assert (await srv.get("/api/v1/functions/nope"))[0] == 404

        status, body = await srv.get("/api/v1/deployments")
        assert status == 200
        listed = body["deployments"]
        assert next(d["name"] for d in listed) == NAME  # newest first
        assert {d["outcome"] for d in listed} == {"succeeded"}
        assert len(listed) == 3
        assert "steps" not in listed[0]
        paged = await _all_pages(srv, "/api/v1/deployments", "deployments")
        assert [d["deployment_id"] for d in paged] == [d["deployment_id"] for d in listed]
        for query, expected in (
            (f"function={NAME}", 2),
            (f"function={rows[BILLING]['stream']}", 1),
            (f"commit={second[:10]}", 1),
            (f"commit={first}", 2),
            (f"account={rows[NAME]['account']}", 3),
            ("account=000000000000", 0),
            (f"region={setup.region}", 3),
            ("outcome=succeeded", 3),
            ("outcome=rolled_back", 0),
            (f"repository={setup.repo.path}", 3),
            ("repository=https://example.com/other.git", 0),
            ("state=finished", 3),
        ):
            status, body = await srv.get(f"/api/v1/deployments?{query}")
            assert (status, len(body["deployments"])) == (200, expected), query
        assert (await srv.get("/api/v1/deployments?commit=abc"))[0] == 400
        assert (await srv.get("/api/v1/deployments?limit=0"))[0] == 400
        assert (await srv.get("/api/v1/deployments?cursor=xyz"))[0] == 400

        newest = listed[0]["deployment_id"]
        status, full = await srv.get(f"/api/v1/deployments/{newest}")
        assert status == 200
        assert full["commit"] == second
        assert next(s["kind"] for s in full["steps"]) == "requested"
        assert full["steps"][-1]["kind"] == "finished"
        assert (await srv.get("/api/v1/deployments/nope"))[0] == 404

        status, body = await srv.get("/api/v1/commits")
        assert status == 200
        assert [c["sha"] for c in body["commits"]] == [second, first]
        latest = body["commits"][0]
        assert latest["commit_hash"] == second
        assert latest["status"] == "PROCESSED_SUCCESS"
        assert latest["branch"] == "main"
        assert latest["planned"][0]["action"] == "new_version"
        assert latest["lambda_relevant_files"] == {
            "added_or_modified": {PREFIX: [f"{PREFIX}_lambdadef.json"]}
        }
        assert (await srv.get("/api/v1/commits?n=1"))[1]["commits"][0]["sha"] == second
        assert (await srv.get("/api/v1/commits?branch=other"))[1]["commits"] == []
        status, one_commit = await srv.get(f"/api/v1/commits/{first[:8]}")
        assert status == 200
        assert one_commit["commits"][0]["sha"] == first
        assert len(one_commit["commits"][0]["deployments"]) == 2
        assert (await srv.get("/api/v1/commits/0000000"))[0] == 404

        status, page = await srv.get("/api/v1/events?limit=5")
        assert status == 200
        assert [e["position"] for e in page["events"]] == [1, 2, 3, 4, 5]
        assert page["next_since"] == 5
        status, page = await srv.get("/api/v1/events?since=5&limit=2")
        assert [e["position"] for e in page["events"]] == [6, 7]
        status, page = await srv.get("/api/v1/events?type=DeploymentFinished&limit=1000")
        assert len(page["events"]) == 3
        assert {e["type"] for e in page["events"]} == {"DeploymentFinished"}
        status, page = await srv.get(f"/api/v1/events?stream={BILLING}&limit=1000")
        assert page["events"]
        assert {e["stream"] for e in page["events"]} == {rows[BILLING]["stream"]}
        assert (await srv.get("/api/v1/events?type=NoSuchEvent"))[0] == 400

        # Time travel: as the views were when the first commit's two deployments had finished.
        log = await srv.log()
        then = [r.position for r in log if r.type == "DeploymentFinished"][1]
        status, past = await srv.get(f"/api/v1/functions?at={then}")
        assert status == 200
        assert past["position"] == then
        assert {r["name"]: r["stable_version"] for r in past["functions"]}[NAME] == "1"
        status, past = await srv.get(f"/api/v1/deployments?at={then}")
        assert len(past["deployments"]) == 2
        assert (await srv.get("/api/v1/functions?at=yesterday"))[0] == 400

        status, watched = await srv.get("/api/v1/repositories/watched")
        assert status == 200
        [branch] = watched["branches"]
        assert (branch["branch"], branch["fetched"], branch["last_planned"]) == (
            "main",
            True,
            second,
        )
        assert (await srv.get("/api/v1/nothing-here"))[0] == 404


async def test_no_answer_carries_a_function_environment_value(setup: Setup) -> None:
    """The log holds billing's environment (it is the desired state); no answer of the API
    does: events mask the values, keeping the names."""
    _write_two(setup)
    async with serving(setup) as srv:
        await srv.wait_for(finished(2))
        answers = []
        for path in (
            "/api/v1/events?limit=1000",
            "/api/v1/functions",
            "/api/v1/deployments",
            "/api/v1/commits",
            "/api/v1/functions/billing",
            "/metrics",
        ):
            status, body = await srv.get(path)
            assert status == 200, path
            answers.append(json.dumps(body))
        assert not [a for a in answers if SECRET_VALUE in a]
        assert '"DB_PASSWORD": "****"' in answers[0]
        log = await srv.log()
        assert any(SECRET_VALUE in json.dumps(r.event.model_dump(mode="json")) for r in log)


async def test_reads_need_the_token_when_configured(setup: Setup) -> None:
    """With reads behind the token: 401 without it or with a wrong one, 200 with it (bearer or
    basic); the probes stay open."""
    _write_two(setup)
    async with serving(setup, auth_reads=True) as srv:
        for path in ("/api/v1/functions", "/api/v1/events", "/metrics", "/api/v1/commits"):
            status, body = await srv.get(path, token=None)
            assert status == 401, path
            assert "token" in body["error"]
            assert (await srv.get(path, token="wrong"))[0] == 401
            assert (await srv.get(path))[0] == 200
        basic = {"Authorization": "Basic " + _b64("ci:s3cret-token")}
        assert (await srv.get("/api/v1/functions", token=None, headers=basic))[0] == 200
        bad = {"Authorization": "Basic " + _b64("ci:nope")}
        assert (await srv.get("/api/v1/functions", token=None, headers=bad))[0] == 401
        assert (await srv.get("/healthz", token=None))[0] == 200
        assert (await srv.get("/readyz", token=None))[0] in (200, 503)


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


async def test_a_read_waits_for_the_first_read_of_the_log(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine started on a log it has not folded yet answers what the log says, not an
    empty list (the fold is held back a second here, as a long log or a busy machine does)."""
    from engine.server import state

    _write_two(setup)
    async with serving(setup) as srv:
        await srv.wait_for(finished(2))
    real = state.LogState.run

    async def slow(self: state.LogState) -> None:
        await anyio.sleep(1.0)
        await real(self)

    monkeypatch.setattr(state.LogState, "run", slow)
    async with serving(setup) as srv:
        status, body = await srv.get("/api/v1/functions")
        assert status == 200, body
        assert {f["name"] for f in body["functions"]} == {NAME, BILLING}
