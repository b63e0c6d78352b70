"""The engine's orchestration on in-memory ports: the event store, the repository, AWS and a
manual clock (``engine.testing``). Planning, recovery, supersede, the operator hand-over and
how a run that fails stops, each in milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from engine.errors import AwsThrottled, ConfigError, SourceError, StoreCorrupt
from engine.events import Event, Metadata, NewEvent, RecordedEvent
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    OperatorRequested,
    RollbackStarted,
    TrafficShifted,
)
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.runtime.engine import Engine, EngineConfig, RunReport
from engine.runtime.providers import RegionPorts
from engine.store.memory import MemoryEventStore
from engine.testing import FakeAws, FakeProvider, ManualClock, MemoryRepo
from tests.builders import events_of
from tests.runtime.support import write_function

pytestmark = pytest.mark.anyio

STREAM = "fn:123456789012:us-east-1:orders"
ALARM = "orders-errors"
OUT = {
    "lambda_exec_role_arn": {"value": "arn:aws:iam::123456789012:role/r"},
    "s3_bucket_name": {"value": "b"},
    "s3_object_blue_key": {"value": "blue.zip"},
    "s3_object_green_key": {"value": "green.zip"},
}
NOW = {"type": "ALL_AT_ONCE", "waitInterval": 0}
CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 60}


@dataclass
class World:
    """One store, one repository and one AWS account, shared by the engines a test starts
    one after the other (a restart keeps the log, the branch and AWS)."""

    repo: MemoryRepo = field(default_factory=MemoryRepo)
    store: MemoryEventStore = field(default_factory=MemoryEventStore)
    provider: FakeProvider = field(default_factory=FakeProvider)
    seen: list[RecordedEvent] = field(default_factory=list)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def config(self) -> EngineConfig:
        # The database path is never opened: the engine runs on the store given to it.
        return EngineConfig(
            repo="memory://orders", db=Path("/nonexistent/glam.db"), poll=0.01, ops_poll=0.01
        )

    def engine(
        self,
        clock: ManualClock | None = None,
        on_event: Callable[[RecordedEvent], None] | None = None,
    ) -> Engine:
        def hook(record: RecordedEvent) -> None:
            self.seen.append(record)
            self._changed.set()
            if on_event is not None:
                on_event(record)

        return Engine(
            self.config(),
            store=self.store,
            source=self.repo,
            ports=self.provider,
            clock=clock or ManualClock(autojump=True),
            on_event=hook,
        )

    async def once(self, clock: ManualClock | None = None) -> RunReport:
        async with self.engine(clock) as engine:
            with anyio.fail_after(10):
                return await engine.run(once=True)

    async def wait_for(self, predicate: Callable[[Event], bool]) -> None:
        """Until an engine of this world appended an event ``predicate`` accepts."""
        with anyio.fail_after(10):
            while not any(predicate(r.event) for r in self.seen):
                self._changed = anyio.Event()
                await self._changed.wait()

    async def aws(self) -> FakeAws:
        await self.provider.region("us-east-1")
        return self.provider.fakes["us-east-1"][0]

    async def events(self, kind: type[Event]) -> list[RecordedEvent]:
        return [r for r in await self.store.read_all() if isinstance(r.event, kind)]


def outcomes(report: RunReport) -> list[str]:
    return [f.outcome for _, f in report.finished]


@pytest.fixture
def world() -> World:
    return World()


async def test_a_commit_is_planned_deployed_and_then_left_alone(world: World) -> None:
    """A new definition deploys once; a restart with nothing new plans and deploys nothing."""
    write_function(world.repo, OUT, traffic=NOW)
    head = world.repo.commit("add orders")
    report = await world.once()
    assert outcomes(report) == ["succeeded"]
    assert report.head == head
    aws = await world.aws()
    assert aws.function_names() == ["orders"]
    again = await world.once()
    assert (again.finished, again.exit_code) == ([], 0)
    assert len(await world.events(DeploymentRequested)) == 1


async def test_an_unavailable_repository_plans_nothing(world: World) -> None:
    """An outage is reported, never taken for "every function deleted"."""
    write_function(world.repo, OUT, traffic=NOW)
    world.repo.commit("add orders")
    await world.once()
    world.repo.unavailable = "remote down"
    report = await world.once()
    assert (report.unavailable, report.exit_code, report.finished) == ("remote down", 1, [])


async def test_a_restart_resumes_the_deployment_in_flight(world: World) -> None:
    """An engine stopped while a deployment is in flight leaves it to the next one, which
    finishes it from the log without requesting it again."""
    write_function(world.repo, OUT, traffic=NOW)
    world.repo.commit("add orders")
    engine = world.engine(on_event=lambda r: engine.stop() if r.stream == STREAM else None)
    async with engine:
        first = await engine.run(once=True)
    assert first.finished == []
    report = await world.once()
    assert outcomes(report) == ["succeeded"]
    assert len(await world.events(DeploymentRequested)) == 1


async def _until(clock: ManualClock, done: Callable[[], bool]) -> None:
    """Move the manual clock on until ``done()``: each step lets the tasks run first."""
    with anyio.fail_after(10):
        while not done():
            await anyio.sleep(0.001)
            clock.advance(5)


async def test_a_newer_commit_supersedes_a_canary_in_flight(world: World) -> None:
    """A commit landing while a canary bakes rolls it back at its next safe point, then
    deploys the newer desired state."""
    write_function(world.repo, OUT, traffic=NOW)
    world.repo.commit("v1")
    await world.once()
    write_function(world.repo, OUT, code="green", traffic=CANARY)
    world.repo.commit("green, slow canary")
    world.seen.clear()
    clock = ManualClock()
    engine = world.engine(clock)

    def finished() -> list[str]:
        return [r.event.outcome for r in world.seen if isinstance(r.event, DeploymentFinished)]

    async with engine, anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        await _until(clock, lambda: any(isinstance(r.event, TrafficShifted) for r in world.seen))
        write_function(world.repo, OUT, code="blue", memory=256, traffic=NOW)
        world.repo.commit("blue with more memory")
        # Planned while the canary bakes (the clock stands still until it is).
        first = events_of(world.seen, DeploymentRequested)[0].deployment_id
        await world.wait_for(
            lambda e: isinstance(e, DeploymentRequested) and e.deployment_id != first
        )
        await _until(clock, lambda: finished()[-1:] == ["succeeded"])
        engine.stop()
    assert finished() == ["superseded", "succeeded"]


async def test_an_abort_arriving_during_a_rollback_is_recorded_as_ignored(world: World) -> None:
    """An abort checked while the canary ran, handed over once its rollback has started, is
    recorded ignored with why; the deployment finishes rolled back for its own reason."""
    write_function(world.repo, OUT, traffic=NOW, alarms=(ALARM,))
    world.repo.commit("v1")
    aws = await world.aws()
    aws.set_alarm(ALARM, "OK")
    await world.once()
    write_function(world.repo, OUT, code="green", traffic=CANARY, alarms=(ALARM,))
    world.repo.commit("green")
    aws.set_alarm(ALARM, "ALARM")
    # The first engine stops as soon as the rollback is durable.
    engine = world.engine(
        on_event=lambda r: engine.stop() if isinstance(r.event, RollbackStarted) else None
    )
    async with engine:
        await engine.run(once=True)
    [rolling] = events_of(await world.events(RollbackStarted), RollbackStarted)
    deployment = rolling.deployment_id
    issued = OperatorCommandIssued(
        command="abort", target=STREAM, reason="p99", deployment_id=deployment
    )
    await world.store.append(
        OPS_STREAM, [NewEvent(issued, Metadata(event_id="cmd-1", actor="bob"))]
    )
    # The restarted saga's alias call is throttled once: its rollback waits on the clock,
    # which moves only once the command has been handed over.
    aws.fail_next("UpdateAlias", AwsThrottled("slow down"))
    clock = ManualClock()
    handed_over = anyio.Event()

    def watch(record: RecordedEvent) -> None:
        if isinstance(record.event, OperatorRequested):
            handed_over.set()

    engine = world.engine(clock, on_event=watch)
    report = RunReport()
    async with engine, anyio.create_task_group() as tg:

        async def run() -> None:
            nonlocal report
            report = await engine.run(once=True)

        tg.start_soon(run)
        with anyio.fail_after(10):
            await handed_over.wait()
        await _until(clock, lambda: bool(report.finished))
    [handed] = await world.events(OperatorRequested)
    assert isinstance(handed.event, OperatorRequested)
    assert (handed.stream, handed.meta.causation_id) == (STREAM, "cmd-1")
    assert handed.event.outcome == "ignored"
    assert handed.event.note == f"deployment {deployment} of {STREAM} is already rolling back"
    [(_, done)] = report.finished
    assert done.outcome == "rolled_back"
    assert not done.reason.startswith("aborted")


class _FailingLoads(MemoryEventStore):
    """A store whose views can be loaded once: every later load fails."""

    loads = 0

    async def load_views(self, projection: str) -> tuple[int, dict[tuple[str, str], str]]:
        self.loads += 1
        if self.loads > 1:
            raise StoreCorrupt("the views cannot be read", hint="restore it from a backup")
        return await super().load_views(projection)


class _BrokenRepo(MemoryRepo):
    async def observe(self, last_sha: str | None) -> object:  # type: ignore[override]
        raise SourceError("the mirror is broken", hint="delete .glam/mirror")


async def test_an_error_that_stops_the_engine_is_never_replaced_by_one_while_stopping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The error that stopped the run leaves it; saving the views afterwards failing too is
    logged, never raised in its place."""
    world = World(repo=_BrokenRepo(), store=_FailingLoads())
    with pytest.raises(ExceptionGroup) as stopped:
        await world.once()
    [error] = stopped.value.exceptions
    assert isinstance(error, SourceError)
    assert "the views cannot be read" in caplog.text


class _NoCredentials(FakeProvider):
    """AWS ports that cannot be made any more (the credentials for them are gone)."""

    async def region(self, region: str, account: str | None = None) -> RegionPorts:
        raise ConfigError("no credentials for account 123456789012", hint="configure them")


async def test_a_deployment_whose_aws_cannot_be_reached_is_not_left_in_flight(
    world: World,
) -> None:
    """A deployment that never started ends "failed" with the reason; one that had changed
    AWS stays in flight (only a read of AWS can say where its alias is) until an operator
    aborts it, which then ends it with what to check by hand; afterwards a run exits 0."""
    write_function(world.repo, OUT, traffic=NOW)
    world.repo.commit("v1")
    await world.once()
    write_function(world.repo, OUT, code="green", traffic=CANARY)
    world.repo.commit("green, slow canary")
    # The canary shifts, then the engine stops in its bake.
    engine = world.engine(
        on_event=lambda r: engine.stop() if isinstance(r.event, TrafficShifted) else None
    )
    async with engine:
        await engine.run(once=True)
    healthy, world.provider = world.provider, _NoCredentials()
    stuck = await world.once()
    assert stuck.finished == []
    assert any("no credentials" in error for error in stuck.errors)
    issued = OperatorCommandIssued(command="abort", target=STREAM, reason="creds gone")
    await world.store.append(
        OPS_STREAM, [NewEvent(issued, Metadata(event_id="cmd-1", actor="bob"))]
    )
    aborted = await world.once()
    [(_, done)] = aborted.finished
    assert done.outcome == "failed"
    assert done.reason.startswith("aborted by bob: creds gone; glam cannot act on this function")
    assert "set it to version 1" in done.reason or "version 2 may be left over" in done.reason
    # A later commit's deployment, still unreachable, ends at once; with AWS back, all is well.
    write_function(world.repo, OUT, code="blue", memory=256, traffic=NOW)
    world.repo.commit("blue, more memory")
    refused = await world.once()
    assert outcomes(refused) == ["failed"]
    world.provider = healthy
    write_function(world.repo, OUT, code="blue", memory=512, traffic=NOW)
    world.repo.commit("blue, more memory still")
    fixed = await world.once()
    assert outcomes(fixed) == ["succeeded"]
    assert fixed.exit_code == 0
