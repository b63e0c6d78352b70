"""Builders shared by the saga tests: desired states, requests and a wired-up runner."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.events import Metadata, NewEvent
from engine.events.desired import DeploymentSettings, DesiredFunction, Readiness, TrafficShifting
from engine.events.function import DeployAction, DeploymentRequested
from engine.runtime.saga_runner import SagaRun, run_saga
from engine.saga import DEFAULT_POLICY, Call, Effect, SagaPolicy
from engine.saga.effects import UpdateAlias
from engine.store.memory import MemoryEventStore
from engine.testing import ManualClock
from engine.testing.aws import FakeAws
from engine.testing.sources import FakeSources

NAME = "orders"
CANARY = TrafficShifting(type="CANARY", percent=20, wait_interval=60)
READINESS = Readiness(wait_interval=10, max_retries=3)
STREAM = f"fn:123456789012:us-east-1:{NAME}"


def desired(
    code: str = "v1",
    *,
    traffic: TrafficShifting | None = CANARY,
    alarms: tuple[str, ...] = (),
    readiness: Readiness = READINESS,
    delete_old_version: bool = True,
    memory: int = 128,
) -> DesiredFunction:
    definition: dict[str, Any] = {
        "FunctionName": NAME,
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::123456789012:role/lambda",
        "Handler": "app.handler",
        "MemorySize": memory,
        "Code": {"S3Bucket": "artifacts", "S3Key": f"orders-{code}.zip"},
    }
    return DesiredFunction(
        prefix="apps/orders/orders",
        function_name=NAME,
        definition=definition,
        settings=DeploymentSettings(
            alias="live",
            traffic=traffic,
            alarms=alarms,
            readiness=readiness,
            delete_old_version=delete_old_version,
        ),
        content_hash=f"hash-{code}-{memory}",
    )


def alias_write(effect: Effect) -> tuple[str, str, Mapping[str, float] | None]:
    """``(step, version, routing)`` of an effect that must be an UpdateAlias call."""
    assert isinstance(effect, Call)
    assert isinstance(effect.operation, UpdateAlias)
    return str(effect.step), effect.operation.version, effect.operation.routing


def requested(
    deployment_id: str, want: DesiredFunction | None, action: DeployAction = "update"
) -> DeploymentRequested:
    return DeploymentRequested(
        deployment_id=deployment_id, commit=f"c-{deployment_id}", action=action, desired=want
    )


@dataclass
class World:
    """A function stream with its store, fake AWS and a manual clock that jumps."""

    aws: FakeAws = field(default_factory=lambda: FakeAws(pending_polls=1, update_polls=1))
    sources: FakeSources = field(default_factory=FakeSources)
    clock: ManualClock = field(default_factory=lambda: ManualClock(autojump=True))
    store: MemoryEventStore = field(init=False)
    policy: SagaPolicy = DEFAULT_POLICY

    def __post_init__(self) -> None:
        self.store = MemoryEventStore(now=self.clock.now)
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return f"evt-{next(self._ids)}"

    async def request(
        self, deployment_id: str, want: DesiredFunction | None, action: DeployAction = "update"
    ) -> None:
        event = requested(deployment_id, want, action)
        await self.store.append(STREAM, [NewEvent(event, Metadata(event_id=self.next_id()))])

    async def run(self, **kwargs: Any) -> SagaRun:
        return await run_saga(
            STREAM,
            self.store,
            self.aws,
            self.aws,
            self.sources,
            self.clock,
            self.next_id,
            policy=self.policy,
            **kwargs,
        )

    async def deploy(
        self, deployment_id: str, want: DesiredFunction | None, action: DeployAction = "update"
    ) -> SagaRun:
        await self.request(deployment_id, want, action)
        return await self.run()

    async def types(self) -> list[str]:
        return [r.event.type for r in await self.store.read_stream(STREAM)]

    async def events(self, type_name: str) -> list[Any]:
        return [r.event for r in await self.store.read_stream(STREAM) if r.event.type == type_name]

    async def weights(self, deployment_id: str) -> list[float]:
        return [
            e.weight
            for e in await self.events("TrafficShifted")
            if e.deployment_id == deployment_id
        ]
