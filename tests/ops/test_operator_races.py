"""Operator commands that race the saga: a command the engine cannot act on is recorded as
ignored (once, with why) and never reaches a later deployment; a deleted function is not
re-created by a retry. On the in-memory fakes, with a real Git repository."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from engine.cli.ops import issue
from engine.errors import GlamError
from engine.events import Metadata, NewEvent, RecordedEvent
from engine.events.function import OperatorRequested, TrafficShifted
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.ports import ANY_VERSION
from engine.runtime.engine import Engine, EngineConfig, RunReport
from engine.store.sqlite import SqliteEventStore
from engine.testing import FakeProvider
from tests.repo.gitrepo import GitRepo
from tests.runtime.support import FAST, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

STREAM = "fn:123456789012:us-east-1:orders"
OUT = {
    "lambda_exec_role_arn": {"value": "arn:aws:iam::123456789012:role/r"},
    "s3_bucket_name": {"value": "b"},
    "s3_object_blue_key": {"value": "blue.zip"},
    "s3_object_green_key": {"value": "green.zip"},
    "s3_object_red_key": {"value": "red.zip"},
}
NOW = {"type": "ALL_AT_ONCE", "waitInterval": 0}


class World:
    def __init__(self, tmp: Path) -> None:
        self.repo = GitRepo(tmp / "repo")
        self.db = tmp / "st" / "glam.db"
        self.db.parent.mkdir()
        self.provider = FakeProvider()
        self.config = EngineConfig(
            repo=str(self.repo.path), db=self.db, poll=0.2, policy=FAST, ops_poll=0.1
        )

    async def once(self) -> RunReport:
        async with Engine(self.config, ports=self.provider) as engine:
            with anyio.fail_after(60):
                return await engine.run(once=True)

    async def command(self, command: str, target: str, event_id: str, **fields: str) -> None:
        issued = OperatorCommandIssued(
            command=command,
            target=target,
            reason="test",
            **fields,
        )
        async with SqliteEventStore(self.db) as store:
            await store.append(
                OPS_STREAM,
                [NewEvent(issued, Metadata(event_id=event_id, actor="alice"))],
                expected_version=ANY_VERSION,
            )

    async def handed(self) -> list[tuple[str, OperatorRequested, str | None]]:
        async with SqliteEventStore(self.db, readonly=True) as store:
            records = await store.read_all()
        return [
            (r.stream, r.event, r.meta.causation_id)
            for r in records
            if isinstance(r.event, OperatorRequested)
        ]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_an_ignored_abort_is_recorded_and_never_reaches_a_later_deployment(
    world: World,
) -> None:
    """An abort that finds nothing in flight is recorded as ignored; after a restart a new
    canary is not aborted by it. An abort checked against another deployment is ignored too."""
    write_function(world.repo, OUT, traffic=NOW)
    world.repo.commit("v1")
    assert [f.outcome for _, f in (await world.once()).finished] == ["succeeded"]
    await world.command("abort", STREAM, "stale")
    assert (await world.once()).finished == []
    [(stream, event, cause)] = await world.handed()
    assert (stream, event.outcome, cause) == (STREAM, "ignored", "stale")
    assert "nothing in flight" in event.note
    # A command naming a deployment that is not the one in flight is ignored as well.
    await world.command("promote", STREAM, "other", deployment_id="dep-gone")
    canary = {"type": "CANARY", "percent": 50, "waitInterval": 1}
    write_function(world.repo, OUT, code="green", traffic=canary)
    world.repo.commit("v3")
    [(_, finished)] = (await world.once()).finished
    assert finished.outcome == "succeeded"
    assert not finished.reason.startswith(("aborted", "promoted"))
    handed = await world.handed()
    assert [(e.command, e.outcome, c) for _, e, c in handed] == [
        ("abort", "ignored", "stale"),
        ("promote", "ignored", "other"),
    ]
    assert "dep-gone" in handed[1][1].note


async def test_retry_never_recreates_a_deleted_function(world: World) -> None:
    """A rolled-back function whose definition is then deleted: ``glam retry`` is refused, and
    a retry already in the ops stream is recorded as ignored, not deployed."""
    write_function(world.repo, OUT, traffic=NOW)
    world.repo.commit("v1")
    await world.once()
    canary = {"type": "CANARY", "percent": 50, "waitInterval": 30}
    write_function(world.repo, OUT, code="green", traffic=canary)
    world.repo.commit("v2")
    # Checked while v2 is in flight, handed over at once: v2 rolls back.
    shifted = anyio.Event()

    def watch(record: RecordedEvent) -> None:
        if isinstance(record.event, TrafficShifted) and record.event.weight > 0:
            shifted.set()

    report = RunReport()
    async with Engine(world.config, ports=world.provider, on_event=watch) as engine:

        async def run() -> None:
            nonlocal report
            report = await engine.run(once=True)

        with anyio.fail_after(45):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await shifted.wait()
                await issue(world.db, "abort", "orders", reason="bad", actor="alice")
    assert [f.outcome for _, f in report.finished] == ["rolled_back"]
    world.repo.remove("apps/orders/orders_lambdadef.json")
    world.repo.remove("apps/orders/orders_lambdadepdef.json")
    world.repo.commit("retire orders")
    assert [f.outcome for _, f in (await world.once()).finished] == ["succeeded"]
    fake = world.provider.fakes["us-east-1"][0]
    assert "orders" not in fake._functions
    with pytest.raises(GlamError, match="no rolled-back desired state"):
        await issue(world.db, "retry", STREAM, reason="oops", actor="bob")
    # A retry checked before the delete, handed over after it.
    await world.command("retry", STREAM, "late-retry")
    assert (await world.once()).finished == []
    assert "orders" not in fake._functions
    retries = [(e.outcome, e.note) for _, e, _ in await world.handed() if e.command == "retry"]
    assert retries == [("ignored", f"{STREAM} has no rolled-back desired state to retry")]
