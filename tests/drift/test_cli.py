"""``glam drift`` on the embedded AWS (exit 0 none, 1 drift, 2 an error; --json) and the
drift ``glam status`` marks, from a real SQLite log of a real deployment."""

from __future__ import annotations

import json

import anyio
import pytest
from typer.testing import CliRunner

from engine.local import LocalAwsThread
from tests.drift.support import lambda_call, sweeper
from tests.runtime.support import NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _glam(*args: str) -> tuple[int, str]:
    from engine.cli.main import app

    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout  # the chain head goes to stderr


async def drift(setup: Setup, *args: str, endpoint: str | None = None) -> tuple[int, str]:
    options = ["--db", str(setup.db), "--endpoint-url", endpoint or setup.endpoint_url]
    return await anyio.to_thread.run_sync(
        lambda: _glam("drift", *args, *options, "--region", setup.region)
    )


async def test_glam_drift_exit_codes_and_json(setup: Setup, local_aws: LocalAwsThread) -> None:
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 1})
    setup.repo.commit("orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    code, output = await drift(setup)
    assert (code, "AWS matches" in output) == (0, True), output
    await lambda_call(
        local_aws,
        "update_function_configuration",
        FunctionName=NAME,
        MemorySize=512,
        Environment={"Variables": {"DB_PASSWORD": "hunter2-not-shown"}},
    )
    code, output = await drift(setup, NAME)
    assert code == 1, output
    assert "$LATEST.MemorySize: 128 → 512" in output
    assert "$LATEST.Environment.Variables.DB_PASSWORD: (absent) → ***" in output
    assert "hunter2" not in output
    code, output = await drift(setup, NAME, "--json")
    assert code == 1
    (entry,) = json.loads(output)
    assert {d["path"] for d in entry["differences"]} == {
        "$LATEST.MemorySize",
        "$LATEST.Environment.Variables.DB_PASSWORD",
    }
    assert (await drift(setup, "nosuchfunction"))[0] == 2
    assert (await drift(setup, endpoint="http://127.0.0.1:9"))[0] == 2  # AWS unreachable
    # The engine's sweep records it; glam status marks the function.
    async with sweeper(setup) as sweep:
        await sweep.once()
    code, output = await anyio.to_thread.run_sync(
        lambda: _glam("status", "--db", str(setup.db), "--json")
    )
    assert code == 0, output
    (row,) = json.loads(output)
    assert sorted(d["path"] for d in row["drift"]) == [
        "$LATEST.Environment.Variables.DB_PASSWORD",
        "$LATEST.MemorySize",
    ]
    code, output = await anyio.to_thread.run_sync(lambda: _glam("status", "--db", str(setup.db)))
    assert "DRIFT $LATEST.Environment.Variables.DB_PASSWORD +1" in output
