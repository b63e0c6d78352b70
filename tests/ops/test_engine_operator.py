"""Operator commands end to end: ``glam abort`` and ``glam allow-deletes`` run as separate
processes against the database of an engine on the embedded AWS."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from engine.events import RecordedEvent
from engine.events.function import OperatorRequested, TrafficShifted
from engine.events.repo import DeletesHeld
from engine.local import LocalAwsThread
from engine.runtime.engine import RunReport
from tests.builders import events_of
from tests.runtime.support import NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).parents[2]
FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}


async def glam(*args: str) -> tuple[int, str]:
    """``glam ARGS`` in a process of its own (as an operator runs it next to the engine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-c", "from engine.cli.main import main; main()", *args]
    with anyio.fail_after(60):
        done = await anyio.run_process(command, env=env, cwd=ROOT, check=False)
    return done.returncode, (done.stdout + done.stderr).decode()


async def test_abort_rolls_a_running_canary_back(setup: Setup, local_aws: LocalAwsThread) -> None:
    """A canary aborted from another process while it bakes rolls back at once, with the
    operator's name and reason; the command is acted on once, also after a restart."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    # A canary whose bake would take a minute: only the abort can end it within the test.
    canary = {"type": "CANARY", "percent": 50, "waitInterval": 60}
    write_function(setup.repo, setup.outputs, code="green", traffic=canary)
    setup.repo.commit("green")

    shifted = anyio.Event()

    def watch(record: RecordedEvent) -> None:
        if isinstance(record.event, TrafficShifted) and record.event.weight > 0:
            setup.clock.hold()  # the bake does not pass while the operator types
            shifted.set()

    report = RunReport()
    async with setup.engine(on_event=watch, ops_poll=0.2) as engine:

        async def run() -> None:
            nonlocal report
            report = await engine.run(once=True)

        with anyio.fail_after(45):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await shifted.wait()
                code, output = await glam(
                    "abort",
                    NAME,
                    "--reason",
                    "p99 doubled",
                    "--actor",
                    "alice",
                    "--db",
                    str(setup.db),
                )
                assert code == 0, output
                assert "abort fn:" in output
                setup.clock.release()

    [(stream, finished)] = report.finished
    assert (finished.outcome, finished.stable_version) == ("rolled_back", "1")
    assert finished.reason.startswith("aborted by alice: p99 doubled")
    updates = [
        (e.version, dict(e.routing or {}))
        for e in local_aws.journal.calls("UpdateAlias", function=NAME)
        if 200 <= e.status < 300
    ]
    assert updates == [("1", {"2": 0.5}), ("1", {})]
    local_aws.journal.check_invariants()
    [issued] = await setup.events("OperatorCommandIssued")
    [handed] = await setup.events("OperatorRequested")
    assert (handed.stream, handed.meta.causation_id, handed.meta.actor) == (
        stream,
        issued.meta.event_id,
        "alice",
    )
    assert isinstance(handed.event, OperatorRequested)
    assert handed.event.deployment_id == finished.deployment_id
    # A restart reads the ops stream again: the command is not handed over twice.
    again = await setup.run_once()
    assert again.finished == []
    assert len(await setup.events("OperatorRequested")) == 1
    # Nothing is in flight now: a second abort is refused with one line and exit 1.
    code, output = await glam("abort", NAME, "--reason", "again", "--db", str(setup.db))
    assert code == 1
    assert "nothing in flight" in output


async def test_allow_deletes_releases_held_deletes(setup: Setup, local_aws: LocalAwsThread) -> None:
    """Deleting two of three functions is held; ``glam allow-deletes`` releases it, once."""
    for name in ("orders", "billing", "stock"):
        write_function(
            setup.repo, setup.outputs, name=name, prefix=f"apps/{name}/{name}", traffic=FAST
        )
    setup.repo.commit("three functions")
    assert outcomes(await setup.run_once()) == ["succeeded"] * 3
    for name in ("billing", "stock"):
        setup.repo.remove(f"apps/{name}/{name}_lambdadef.json")
    sha = setup.repo.commit("retire billing and stock")
    held = await setup.run_once()
    assert held.finished == []
    assert [e.sha for e in events_of(await setup.events(), DeletesHeld)] == [sha]

    code, output = await glam("allow-deletes", "nope", "--reason", "x", "--db", str(setup.db))
    assert code == 2, output
    code, output = await glam(
        "allow-deletes", sha[:10], "--reason", "retiring", "--actor", "bob", "--db", str(setup.db)
    )
    assert code == 0, output

    released = await setup.run_once()
    assert [f.outcome for _, f in released.finished] == ["succeeded", "succeeded"]
    # The run that released them no longer reports them held (nor exits 3 for them).
    assert (released.held, released.exit_code) == ([], 0)
    deleted = {r.stream.rsplit(":", 1)[1] for r in await setup.events("FunctionDeleted")}
    assert deleted == {"billing", "stock"}
    [handed] = await setup.events("OperatorRequested")
    assert (handed.stream.startswith("repo:"), handed.meta.actor) == (True, "bob")
    # Exactly once: a restart neither plans the deletes again nor hands the command over again.
    again = await setup.run_once()
    assert again.finished == []
    assert len(await setup.events("OperatorRequested")) == 1
    code, output = await glam("allow-deletes", sha, "--reason", "again", "--db", str(setup.db))
    assert code == 1
    assert "no deletes are held" in output
