"""A watched repository, an engine and the embedded AWS, wired for the runtime tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import anyio

from engine.events import RecordedEvent
from engine.events.function import TrafficShifted
from engine.ports import Clock
from engine.runtime.engine import Engine, EngineConfig, RunReport
from engine.runtime.providers import PortsProvider
from engine.saga import SagaPolicy, StepRetry
from engine.store.sqlite import SqliteEventStore
from engine.testing import AutojumpClock
from tests.builders import events_of
from tests.repo.gitrepo import GitRepo

NAME = "orders"
PREFIX = "apps/orders/orders"
ALARM = "glam-demo-errors"  # made by engine.local.account.build_account
# Short polls so that a deployment with 1 s waits takes seconds, not minutes.
FAST = SagaPolicy(
    retry=StepRetry(max_attempts=5, initial_backoff=0.2, max_backoff=1.0),
    poll_seconds=0.25,
    alarm_poll_seconds=0.25,
)


class WorkTree(Protocol):
    """A repository tests write files into: ``GitRepo`` or ``engine.testing.MemoryRepo``."""

    def write(self, path: str, content: Any, /) -> None: ...


def write_function(
    repo: WorkTree,
    outputs: dict[str, Any],
    *,
    code: str = "blue",
    memory: int = 128,
    traffic: dict[str, Any] | None = None,
    alarms: tuple[str, ...] = (),
    readiness: dict[str, int] | None = None,
    name: str = NAME,
    prefix: str = PREFIX,
    depdef_extra: dict[str, Any] | None = None,
) -> None:
    """Write the definition and deployment definition of one function (``depdef_extra``:
    more keys of the deployment definition, ``hooks`` say)."""
    value = {k: v["value"] for k, v in outputs.items()}
    repo.write(
        f"{prefix}_lambdadef.json",
        {
            "FunctionName": name,
            "Role": value["lambda_exec_role_arn"],
            "Handler": "test_lambda_function.lambda_handler",
            "Runtime": "python3.12",
            "MemorySize": memory,
            "Code": {"S3Bucket": value["s3_bucket_name"], "S3Key": value[f"s3_object_{code}_key"]},
        },
    )
    depdef: dict[str, Any] = {
        "alias": "live",
        "trafficShiftingConfig": traffic or {"type": "CANARY", "percent": 50, "waitInterval": 1},
        "readinessCheck": readiness or {"waitInterval": 1, "maxRetries": 3},
    }
    if alarms:
        depdef["alarms"] = {"alarmNames": list(alarms)}
    depdef.update(depdef_extra or {})
    repo.write(f"{prefix}_lambdadepdef.json", depdef)


@dataclass
class Setup:
    """Everything one runtime test needs; ``engine()`` makes a fresh engine on the same db."""

    repo: GitRepo
    db: Path
    outputs: dict[str, Any]
    endpoint_url: str
    region: str
    clock: AutojumpClock

    def config(self, **changes: Any) -> EngineConfig:
        config = EngineConfig(
            repo=str(self.repo.path),
            db=self.db,
            region=self.region,
            endpoint_url=self.endpoint_url,
            poll=0.2,
            policy=FAST,
            access_key_id="testing",
            secret_access_key="testing",
        )
        return replace(config, **changes)

    def engine(
        self,
        *,
        ports: PortsProvider | None = None,
        on_event: Callable[[RecordedEvent], None] | None = None,
        clock: Clock | None = None,
        **changes: Any,
    ) -> Engine:
        return Engine(
            self.config(**changes), ports=ports, clock=clock or self.clock, on_event=on_event
        )

    async def run_once(self, **kwargs: Any) -> RunReport:
        async with self.engine(**kwargs) as engine:
            with anyio.fail_after(60):
                return await engine.run(once=True)

    async def events(self, type_name: str | None = None) -> list[RecordedEvent]:
        async with SqliteEventStore(self.db, readonly=True) as store:
            records = await store.read_all()
        return [r for r in records if type_name is None or r.event.type == type_name]

    async def weights(self, deployment_id: str) -> list[float]:
        return [
            e.weight
            for e in events_of(await self.events(), TrafficShifted)
            if e.deployment_id == deployment_id
        ]


def outcomes(report: RunReport) -> list[str]:
    return [f.outcome for _, f in report.finished]
