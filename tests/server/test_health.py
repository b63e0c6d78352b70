"""The probes and the read API over real HTTP against a running engine on the embedded AWS."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.local import LocalAwsThread
from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}


async def test_probes_and_functions_after_a_deployment(setup: Setup) -> None:
    """/healthz answers at once; /readyz is ready once the branch was fetched; the functions
    the engine deployed are listed as ``glam status`` shows them."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup) as srv:
        assert await srv.get("/healthz") == (200, {"status": "ok"})
        await srv.wait_for(lambda r: r.type == "DeploymentFinished")
        status, ready = await srv.get("/readyz")
        assert (status, ready) == (200, {"ready": True, "reasons": []})
        status, body = await srv.get("/api/v1/functions")
        assert status == 200
        [row] = body["functions"]
        assert (row["name"], row["state"], row["stable_version"]) == (NAME, "stable", "1")


async def test_not_ready_while_a_branch_cannot_be_read(setup: Setup, tmp_path: Path) -> None:
    """A repository that cannot be read keeps /readyz at 503 naming it; /healthz is 200."""
    async with serving(setup, repo=str(tmp_path / "no-such-repo")) as srv:
        with anyio.fail_after(30):
            while True:
                status, body = await srv.get("/readyz")
                if any("not fetched yet:" in r for r in body["reasons"]):
                    break
                await anyio.sleep(0.1)
        assert status == 503
        assert body["ready"] is False
        assert (await srv.get("/healthz"))[0] == 200


async def test_a_deployment_that_does_not_move_is_reported_and_throttles_counted(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """A CreateFunction that takes six seconds, with readiness bounded at one: /readyz names
    the deployment while it hangs and is ready again once it moves on. Throttled polls are
    counted by operation."""
    local_aws.set_faults("seed=3;CreateFunction:latency=6;GetFunction:throttle=0.4")
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup, server={"stuck_after": 1.0}) as srv:
        with anyio.fail_after(30):
            while True:
                status, body = await srv.get("/readyz")
                if any("has not moved" in r for r in body["reasons"]):
                    break
                await anyio.sleep(0.1)
        assert status == 503
        [reason] = body["reasons"]
        assert "has not moved for" in reason
        assert NAME in reason
        await srv.wait_for(lambda r: r.type == "DeploymentFinished")
        assert (await srv.get("/readyz"))[0] == 200
        _, text = await srv.get("/metrics")
        throttles = [
            s
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "glam_aws_throttles_total"
        ]
        assert throttles
        assert {s.labels["operation"] for s in throttles} == {"GetFunction"}
        calls_429 = [
            s
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "glam_aws_calls_total" and s.labels["status"] == "429"
        ]
        assert sum(s.value for s in calls_429) == sum(s.value for s in throttles)
