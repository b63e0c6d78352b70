"""Helpers of the chaos tests: one function per case in a repository and a database of its
own, the engine as a ``glam run --once`` subprocess, and the checks every chaos test makes.

A case is isolated by its function name (the embedded AWS and its journal are shared by all the
cases of a test) and by its own repository and SQLite file, so cases can run side by side.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from typer.testing import CliRunner

from engine.events import RecordedEvent
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    StepStarted,
    StepSucceeded,
)
from engine.local import LocalAwsThread
from engine.local.clients import aws_client
from engine.runtime.engine import Engine, EngineConfig, RunReport
from engine.saga import SagaPolicy, StepRetry
from engine.store.sqlite import SqliteEventStore
from engine.testing import AutojumpClock
from tests.repo.gitrepo import GitRepo
from tests.runtime.support import write_function
from tests.support.engine_main import forked_run, start_child

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 90.0  # seconds one engine run may take before the test gives up on it
ALARM = "glam-demo-errors"  # made by engine.local.account.build_account
CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 1}
# Short polls and a generous number of attempts: under injected faults a step may need
# several tries, and every try must be allowed to land before the saga gives up.
PATIENT = SagaPolicy(
    retry=StepRetry(max_attempts=12, initial_backoff=0.1, max_backoff=0.5),
    poll_seconds=0.25,
    alarm_poll_seconds=0.25,
)


@dataclass
class Case:
    """One function with its own repository and database."""

    name: str
    root: Path
    outputs: dict[str, Any]
    endpoint_url: str
    region: str
    clock: AutojumpClock | None = None  # the in-process engines' (the system clock if None)
    repo: GitRepo = field(init=False)
    db: Path = field(init=False)

    def __post_init__(self) -> None:
        self.repo = GitRepo(self.root / "repo")
        self.db = self.root / "state" / "glam.db"

    def prefix(self, name: str | None = None) -> str:
        name = name or self.name
        return f"apps/{name}/{name}"

    def write(
        self,
        *,
        name: str | None = None,
        code: str = "blue",
        memory: int = 128,
        batch: int | None = 10,
        alarms: tuple[str, ...] = (),
        traffic: dict[str, Any] | None = None,
        depdef: dict[str, Any] | None = None,
    ) -> None:
        """The definition, the deployment definition (with ``depdef``'s keys) and (``batch``
        not None) an SQS pull source on the alias, of this case's function or another
        ``name`` in its repository."""
        name = name or self.name
        write_function(
            self.repo,
            self.outputs,
            code=code,
            memory=memory,
            traffic=traffic or CANARY,
            alarms=alarms,
            name=name,
            prefix=self.prefix(name),
            depdef_extra=depdef,
        )
        if batch is not None:
            queue = self.outputs["sqs_queue_arn"]["value"]
            mapping = {"EventSourceArn": queue, "FunctionName": name, "BatchSize": batch}
            self.repo.write(
                f"{self.prefix(name)}_lambdaeventsourcedef.json",
                {"PullEventSources": {"EventSourceMapping": mapping}},
            )

    def remove(self) -> None:
        for suffix in ("lambdadef", "lambdadepdef", "lambdaeventsourcedef"):
            if (self.repo.path / f"{self.prefix()}_{suffix}.json").exists():
                self.repo.remove(f"{self.prefix()}_{suffix}.json")

    def config(self, **changes: Any) -> EngineConfig:
        return EngineConfig(
            repo=str(self.repo.path),
            db=self.db,
            region=self.region,
            endpoint_url=self.endpoint_url,
            poll=0.2,
            policy=PATIENT,
            access_key_id="testing",
            secret_access_key="testing",
            **changes,
        )

    async def run_in_process(self, **changes: Any) -> RunReport:
        """``glam run --once`` in this process, with short polls."""
        async with Engine(self.config(**changes), clock=self.clock) as engine:
            with anyio.fail_after(DEADLINE):
                return await engine.run(once=True)

    def child_argv(self) -> list[str]:
        """``tests.support.engine_main``'s arguments: this case's ``glam run --once``."""
        return [
            "--repo",
            str(self.repo.path),
            "--db",
            str(self.db),
            "--endpoint-url",
            self.endpoint_url,
            "--region",
            self.region,
            "--once",
            "--short-waits",
        ]

    @staticmethod
    def child_env() -> dict[str, str]:
        """The child's environment: this one's, without AWS or glam settings."""
        return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}

    async def run_subprocess(self, failpoints: str) -> tuple[int, str]:
        """``glam run --once`` as a child process armed with ``failpoints`` (through
        ``tests.support.engine_main``, which arms them: glam never reads them itself), with
        short waits; its exit code (``-9`` when a failpoint SIGKILLed it) and its output.
        The child is forked from a fork server that has glam imported already."""
        env = {**self.child_env(), "GLAM_FAILPOINTS": failpoints}
        argv = self.child_argv()
        output = self.root / "child.log"
        # The child runs on its own (system) clock: waiting for it holds no time still here.
        with anyio.fail_after(DEADLINE), detached(self.clock):
            code = await anyio.to_thread.run_sync(forked_run, argv, env, output)
        return code, output.read_text(errors="replace")

    async def run_subprocess_until(
        self,
        reached: Callable[[list[RecordedEvent]], bool],
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[int, str]:
        """``glam run --once`` as a child process (no failpoint), SIGKILLed as soon as its
        log shows ``reached`` (checked every 0.1 s); ``then``, when given, runs once the child
        has started (an operator command to hand over, say). Its exit code and output."""
        env, argv = self.child_env(), self.child_argv()
        output = self.root / "child.log"
        with anyio.fail_after(DEADLINE), detached(self.clock):
            child = start_child(argv, env, output)
            try:
                if then is not None:
                    await then()
                while child.is_alive():
                    if self.db.exists() and reached(await self.events()):
                        os.kill(child.pid or 0, signal.SIGKILL)
                        break
                    await anyio.sleep(0.1)
                await anyio.to_thread.run_sync(child.join)
            finally:
                if child.is_alive():
                    child.kill()
                    child.join()
        assert child.exitcode is not None
        return child.exitcode, output.read_text(errors="replace")

    async def events(self, name: str | None = None) -> list[RecordedEvent]:
        """The function stream of this case's function (or ``name``), in order."""
        async with SqliteEventStore(self.db, readonly=True) as store:
            records = await store.read_all()
        return [r for r in records if r.stream.endswith(f":{name or self.name}")]

    async def deployments(self, name: str | None = None) -> list[str]:
        """Deployment ids, in the order they were requested."""
        return [
            r.event.deployment_id
            for r in await self.events(name)
            if isinstance(r.event, DeploymentRequested)
        ]

    async def finished(self) -> dict[str, DeploymentFinished]:
        return {
            r.event.deployment_id: r.event
            for r in await self.events()
            if isinstance(r.event, DeploymentFinished)
        }

    async def dangling_step(self) -> str | None:
        """The step of an intent the log holds no outcome for: where a crash left it."""
        records = await self.events()
        last = records[-1].event if records else None
        return str(last.step) if isinstance(last, StepStarted) else None


# -- the checks every chaos test makes -----------------------------------------------------


@dataclass(frozen=True)
class AwsView:
    """What the embedded AWS holds for one function, read from moto directly (outside the
    journal and the quota)."""

    exists: bool
    alias: tuple[str, dict[str, float]] | None
    by_code: dict[str, int]  # CodeSha256 -> how many published versions have it
    mappings: list[dict[str, Any]]
    versions: tuple[str, ...] = ()  # the published versions


async def read_aws(aws: LocalAwsThread, name: str, alias: str = "live") -> AwsView:
    async with aws_client("lambda", aws.moto_url, region=aws.region) as lam:
        listed = await lam.list_event_source_mappings()
        mappings = [
            m
            for m in listed.get("EventSourceMappings", [])
            if m.get("FunctionArn", "").split(":")[6:7] == [name]
        ]
        try:
            await lam.get_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            return AwsView(False, None, {}, mappings)
        versions = await lam.list_versions_by_function(FunctionName=name)
        by_code: dict[str, int] = {}
        published = []
        for version in versions["Versions"]:
            if version["Version"] != "$LATEST":
                sha = version.get("CodeSha256", "")
                by_code[sha] = by_code.get(sha, 0) + 1
                published.append(str(version["Version"]))
        try:
            found = await lam.get_alias(FunctionName=name, Name=alias)
        except lam.exceptions.ResourceNotFoundException:
            current = None
        else:
            routing = (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            current = (str(found["FunctionVersion"]), {k: float(v) for k, v in routing.items()})
        return AwsView(True, current, by_code, mappings, tuple(published))


async def version_of(
    aws: LocalAwsThread, case: Case, deployment_id: str, name: str | None = None
) -> str | None:
    """The version ``deployment_id`` published (its publish step's result in the log), if it
    still exists in AWS; None otherwise."""
    published = [
        str(r.event.result.get("version"))
        for r in await case.events(name)
        if isinstance(r.event, StepSucceeded)
        and r.event.deployment_id == deployment_id
        and str(r.event.step) == "publish"
    ]
    if not published:
        return None
    view = await read_aws(aws, name or case.name)
    return published[-1] if published[-1] in view.versions else None


def effective_publishes(aws: LocalAwsThread, name: str) -> list[str]:
    """Versions the journal shows PublishVersion actually made for ``name``: answered 2xx, or
    applied by moto before an injected apply-then-fail/drop.

    Count them, do not compare their numbers: moto numbers a new version "versions left + 1",
    so after a delete it can hand out a number it used before (real Lambda never does)."""
    made = []
    for entry in aws.journal.calls("PublishVersion", function=name):
        applied = entry.forwarded_status if entry.fault else entry.status
        if applied is not None and 200 <= applied < 300:
            made.append(entry.version or "?")
    return made


def referenced_deletes(aws: LocalAwsThread, name: str) -> list[str]:
    """DeleteFunction calls on a version an alias referenced (attempted, even if refused)."""
    return [
        f"{e.function}:{e.qualifier} (seq {e.seq}, referenced by {', '.join(e.referenced_by)})"
        for e in aws.journal.referenced_version_deletes()
        if e.function == name
    ]


@contextlib.contextmanager
def detached(clock: AutojumpClock | None) -> Iterator[None]:
    if clock is None:
        yield
    else:
        with clock.detached():
            yield


def replay_verify(db: Path) -> tuple[int, str]:
    """``glam replay --verify --db DB``: its exit code and output. Synchronous: the command
    runs its own event loop, so call it from a worker thread inside an async test."""
    from engine.cli.main import app

    result = CliRunner().invoke(app, ["replay", "--verify", "--db", str(db)])
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")
