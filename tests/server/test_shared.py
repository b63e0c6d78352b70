"""Engines in shared mode serving HTTP, in one process on one real PostgreSQL log: each serves
reads from the shared log and says which shards it leases; an operator command given to
either is appended to the log and handed over by the plan shard's owner; each sweeps for drift
only the functions of its own shards."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.cli.main import main
from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, OperatorRequested, TrafficShifted
from engine.events.operator import OperatorCommandIssued
from engine.local import LocalAwsThread
from engine.runtime.leases import PLAN_SHARD, shard_of
from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import Served, finished, serving
from tests.support.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # the fixtures of a real PostgreSQL server

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SLOW_CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 600}


async def _shards(srv: Served) -> list[str] | None:
    """The shards ``srv`` leases, once it is ready (None while /readyz says not yet: an engine
    that just took the plan shard has not fetched the repositories)."""
    status, ready = await srv.get("/readyz")
    assert ready["engine"] == srv.engine.config.engine_id
    if status != 200:
        return None
    shards: list[str] = ready["shards"]
    return shards


async def _until(check: Any, *, within: float = 30.0) -> Any:
    with anyio.fail_after(within):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.1)


async def test_shared_engines_serve_the_log_and_hand_commands_over_through_it(
    setup: Setup, postgres_url: str, tmp_path: Path
) -> None:
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("add orders")
    common: dict[str, Any] = {"db": postgres_url, "shared": True, "lease_ttl": 6.0}
    # ops_poll of 30 s: only following the log makes the plan owner act within the waits.
    common |= {"ops_poll": 30.0, "drift_interval": 0}
    async with serving(setup, engine_id="a", data_dir=tmp_path / "a", **common) as a:
        await a.wait_for(finished(1))
        write_function(setup.repo, setup.outputs, code="green", traffic=SLOW_CANARY)
        setup.repo.commit("green")
        shifted = await a.wait_for(
            lambda r: isinstance(r.event, TrafficShifted) and r.event.weight > 0
        )
        stream = shifted.stream
        shard = shard_of(stream)
        assert shard is not None
        assert await _shards(a) == sorted([PLAN_SHARD, shard])  # alone: every shard is its own
        async with serving(setup, engine_id="b", data_dir=tmp_path / "b", **common) as b:

            async def balanced() -> tuple[list[str], list[str]] | None:
                mine, theirs = await _shards(a), await _shards(b)
                if mine is None or theirs is None:
                    return None
                return (mine, theirs) if len(mine) == len(theirs) == 1 else None

            held_a, held_b = await _until(balanced)
            assert sorted(held_a + held_b) == sorted([PLAN_SHARD, shard])
            # Reads on either engine come from the shared log, whoever runs the deployment.
            for srv in (a, b):
                status, body = await srv.get("/api/v1/functions")
                assert status == 200
                assert [f["name"] for f in body["functions"]] == [NAME]
            # The command goes to the engine that does not plan: it is appended to the log,
            # the plan owner hands it over, the function shard's owner rolls back.
            outsider, planner = (a, b) if PLAN_SHARD in held_b else (b, a)
            body = {"reason": "p99 doubled", "actor": "ci"}
            status, answer = await outsider.post(f"/api/v1/functions/{NAME}/abort", body)
            assert status == 202, answer

            async def rolled_back() -> list[RecordedEvent]:
                log = await a.log()
                return [
                    r
                    for r in log
                    if isinstance(r.event, DeploymentFinished) and r.event.outcome == "rolled_back"
                ]

            [done] = await _until(rolled_back, within=20)
            log = await a.log()
            [issued] = [r for r in log if isinstance(r.event, OperatorCommandIssued)]
            [handed] = [r for r in log if isinstance(r.event, OperatorRequested)]
            assert handed.meta.causation_id == issued.meta.event_id
            assert handed in [r for r in planner.seen if r.stream == stream]  # the planner's
            assert handed not in outsider.seen
            assert done.stream == stream

            # Drift: each engine sweeps only the functions of the shards it leases.
            owner, other = (a, b) if shard in held_a else (b, a)
            assert owner.engine.drift is not None
            assert other.engine.drift is not None
            assert await other.engine.drift.sweep() == {}
            assert stream in await owner.engine.drift.sweep()


@pytest.mark.slow
async def test_readyz_of_a_shared_engine_lists_stuck_deployments_by_shard(
    setup: Setup, local_aws: LocalAwsThread, postgres_url: str, tmp_path: Path
) -> None:
    """A CreateFunction that takes six seconds, with readiness bounded at one: a shared
    engine's /readyz lists the deployment under its function's shard while it hangs, and
    nothing once it moved on."""
    local_aws.set_faults("seed=3;CreateFunction:latency=6")
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("add orders")
    common: dict[str, Any] = {"db": postgres_url, "shared": True, "lease_ttl": 6.0}
    common |= {"drift_interval": 0, "engine_id": "a", "data_dir": tmp_path / "a"}
    async with serving(setup, server={"stuck_after": 1.0}, **common) as srv:

        async def listed() -> dict[str, Any] | None:
            _, ready = await srv.get("/readyz")
            return ready if ready["stuck"] else None

        ready = await _until(listed, within=60)
        [(shard, [deployment_id])] = ready["stuck"].items()
        assert ready["ready"] is False
        assert any(deployment_id in reason for reason in ready["reasons"])
        done = await srv.wait_for(finished(1))
        assert shard == shard_of(done.stream)
        _, ready = await srv.get("/readyz")
        assert ready["stuck"] == {}


def test_once_is_refused_for_a_shared_engine_before_anything_opens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--once --shared`` says why not in one line, without connecting (the port is closed)."""
    argv = ["glam", "run", "--once", "--shared", "--repo", str(tmp_path)]
    argv += ["--db", "postgresql://glam@127.0.0.1:1/glam"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "a shared engine's work is its share of the log's" in err
    assert "without --shared" in err
    assert "Traceback" not in err
    assert "cannot connect" not in err
