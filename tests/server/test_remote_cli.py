"""``glam wait --server`` and ``glam sync --server`` against a real engine's server, in
processes of their own as a CI job runs them: wait blocks until the commit's deployment
finishes and exits 0 (1 for a rollback), sync makes the engine fetch at once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from tests.runtime.support import Setup, write_function
from tests.server.support import API_TOKEN, TOKEN_ENV, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


async def glam(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env |= {"PYTHONPATH": str(ROOT), TOKEN_ENV: API_TOKEN}
    with anyio.fail_after(120):
        done = await anyio.run_process(
            [sys.executable, "-m", "engine", *args], env=env, cwd=ROOT, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.slow
async def test_wait_and_sync_through_a_running_engine(setup: Setup) -> None:
    write_function(setup.repo, setup.outputs, traffic={"type": "CANARY", "percent": 50,
                                                       "waitInterval": 2})  # fmt: skip
    head = setup.repo.commit("add orders")
    async with serving(setup, poll=3600) as srv:
        remote = ["--server", srv.url, "--token-env", TOKEN_ENV]
        # The engine fetches only when told: polling is an hour away.
        code, out, err = await glam("sync", *remote, "--repo", str(setup.repo.path), "--json")
        assert code == 0, err
        assert json.loads(out)["syncing"].startswith("repo:")
        code, out, err = await glam("wait", *remote, "--commit", head[:8], "--timeout", "90s")
        assert code == 0, err
        assert "orders: succeeded" in out
        # A second commit whose canary is aborted: wait says so and exits 1.
        write_function(setup.repo, setup.outputs, code="green", traffic={
            "type": "CANARY", "percent": 50, "waitInterval": 600})  # fmt: skip
        second = setup.repo.commit("green")
        code, _, err = await glam("sync", *remote, "--repo", str(setup.repo.path))
        assert code == 0, err
        async with anyio.create_task_group() as tg:

            async def abort_once_shifted() -> None:
                await srv.wait_for(lambda r: r.type == "TrafficShifted")
                status, _ = await srv.post("/api/v1/functions/orders/abort", {"reason": "ci"})
                assert status == 202

            tg.start_soon(abort_once_shifted)
            code, out, err = await glam(
                "wait", *remote, "--commit", second[:8], "--timeout", "90s", "--json"
            )
        assert code == 1, (out, err)
        answer = json.loads(out)
        outcomes = [d["outcome"] for d in answer["deployments"]]
        assert outcomes == ["rolled_back"], answer
