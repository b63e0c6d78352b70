"""``glam run`` as a service and in CI, from a real subprocess on the embedded AWS:
``--once --json`` and its exit code when deletes are held, ``--log-format json``, and a
SIGTERM in the middle of a bake that the next start resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from engine.errors import GlamError
from engine.events.function import TimerStarted
from engine.local import LocalAwsThread
from engine.store.sqlite import SqliteEventStore
from tests.runtime.support import PREFIX, Setup, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
BILLING = "apps/billing/billing"


def _command(setup: Setup, *extra: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    args = [
        sys.executable,
        "-c",
        "from engine.cli.main import main; main()",
        "run",
        "--repo",
        str(setup.repo.path),
        "--db",
        str(setup.db),
        "--endpoint-url",
        setup.endpoint_url,
        "--region",
        setup.region,
        "--poll",
        "0.5",
        *extra,
    ]
    return args, env


async def _run_once(setup: Setup, *extra: str) -> tuple[int, str, str]:
    args, env = _command(setup, "--once", *extra)
    with anyio.fail_after(90):
        done = await anyio.run_process(args, env=env, cwd=ROOT, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_once_json_and_held_deletes_exit_3(setup: Setup, local_aws: LocalAwsThread) -> None:
    """``--once --json`` prints the outcome as JSON; a commit whose deletes are held exits 3
    and says which command releases them; ``--log-format json`` logs JSON lines only."""
    now = {"type": "ALL_AT_ONCE", "waitInterval": 0}
    write_function(setup.repo, setup.outputs, traffic=now)
    write_function(setup.repo, setup.outputs, traffic=now, name="billing", prefix=BILLING)
    setup.repo.commit("add orders and billing")
    code, out, err = await _run_once(setup, "--json", "--log-format", "json")
    assert code == 0, err
    answer = json.loads(out)
    assert [f["outcome"] for f in answer["finished"]] == ["succeeded", "succeeded"]
    logged = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(logged[0])
    assert any("engine started" in line["message"] for line in logged)
    assert "testing" not in err  # the dummy credentials never reach the logs
    setup.repo.remove(f"{PREFIX}_lambdadef.json")
    setup.repo.remove(f"{PREFIX}_lambdadepdef.json")
    setup.repo.remove(f"{BILLING}_lambdadef.json")
    setup.repo.remove(f"{BILLING}_lambdadepdef.json")
    sha = setup.repo.commit("retire both: every function, held for an operator")
    code, out, err = await _run_once(setup)
    assert code == 3, out + err
    assert f"glam allow-deletes {sha[:12]}" in err
    assert "nothing to do" not in out
    code, out, _ = await _run_once(setup, "--json")
    assert code == 3
    (held,) = json.loads(out)["held"]
    assert held["sha"] == sha
    assert held["release"].startswith(f"glam allow-deletes {sha[:12]}")
    local_aws.journal.check_invariants()


async def _bake_started(db: Path) -> bool:
    try:
        async with SqliteEventStore(db, readonly=True) as store:
            records = await store.read_all()
    except GlamError:  # the engine has not created the log yet
        return False
    return any(isinstance(r.event, TimerStarted) and r.event.purpose == "bake" for r in records)


async def test_sigterm_mid_bake_stops_and_the_next_start_resumes(
    setup: Setup, local_aws: LocalAwsThread, tmp_path: Path
) -> None:
    """SIGTERM during a canary's bake stops the engine (exit 0) with the deployment still
    open in the log; the next ``--once`` resumes it and finishes it, publishing nothing
    twice."""
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("add orders")
    code, out, err = await _run_once(setup)
    assert code == 0, out + err
    slow = {"type": "CANARY", "percent": 50, "waitInterval": 4}
    write_function(setup.repo, setup.outputs, code="green", traffic=slow)
    setup.repo.commit("green, on a canary")
    args, env = _command(setup)
    log_path = tmp_path / "engine.log"
    log = log_path.open("wb")
    engine = await anyio.open_process(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        with anyio.move_on_after(60):
            while not await _bake_started(setup.db):
                assert engine.returncode is None, log_path.read_text()
                await anyio.sleep(0.2)
        if not await _bake_started(setup.db):
            pytest.fail(f"no bake within 60 s: {log_path.read_text()}")
        engine.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await engine.wait()
    finally:
        if engine.returncode is None:
            engine.kill()
            await engine.wait()
        log.close()
    output = log_path.read_text()
    assert engine.returncode == 0, output
    assert "stopping" in output
    async with SqliteEventStore(setup.db, readonly=True) as store:
        types = [r.type for r in await store.read_all()]
    last = types[len(types) - types[::-1].index("DeploymentRequested") :]
    assert "TrafficShifted" in last
    assert "DeploymentFinished" not in last  # stopped mid-deployment, at a safe point
    code, out, err = await _run_once(setup)
    assert code == 0, out + err
    assert "succeeded" in out
    published = [e for e in local_aws.journal.calls("PublishVersion") if e.status == 201]
    assert [e.version for e in published] == ["1", "2"]  # never published twice
    local_aws.journal.check_invariants()
