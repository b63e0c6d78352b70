"""The demo's four acts, on the embedded AWS and the real engine (see ``engine.demo``)."""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from engine.demo.narrate import narrate
from engine.demo.repo import (
    BROKEN,
    CANARY,
    ERRORS_ALARM,
    FUNCTIONS,
    LATENCY_ALARM,
    RETIRED,
    SampleRepo,
    broken_definition,
    green_definition,
    initial_files,
)
from engine.errors import GlamError, UsageError
from engine.events import RecordedEvent
from engine.events.function import TrafficShifted
from engine.runtime.engine import Engine, EngineConfig, RunReport
from engine.saga import SagaPolicy
from engine.streams import FUNCTION_PREFIX, parse_function_stream

DEFAULT_FOLDER = Path(".glam") / "demo"
# A file that marks a folder as the demo's own: only such a folder is emptied on a new run.
MARKER = ".glam-demo"
# The embedded AWS answers in milliseconds: poll it often so that the demo moves briskly.
# The errors the broken version "reports" in act 3, above the alarm's threshold of 1.
DEMO_ERRORS = 3.0
DEMO_POLICY = SagaPolicy(poll_seconds=0.5, alarm_poll_seconds=0.5)
LAST_EVENTS = 12
DASHBOARD_PORT = 8090  # as `glam dashboard`; another free port when it is taken


class DemoFailed(GlamError):
    """An act did not end the way the demo expects: glam (or the demo) has a bug."""


@dataclass(frozen=True)
class DemoOptions:
    """``folder`` receives the repository, the database and the engine's mirror; ``wait`` is
    the canary's ``waitInterval`` in seconds; ``keep`` leaves the embedded AWS running at the
    end, and the dashboard of the demo's log served, until Ctrl-C; ``echo`` prints one
    line."""

    folder: Path = DEFAULT_FOLDER
    keep: bool = False
    wait: int = 3
    echo: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


def run_demo(options: DemoOptions) -> int:
    """Play the four acts and print the tour at the end; return the exit code (0 when every
    act ended as expected). Raises ``GlamError`` when something outside glam is missing."""
    if options.wait < 1:
        raise UsageError("--wait must be at least 1 second", hint="e.g. --wait 3")
    started = time.monotonic()
    _prepare(options.folder)
    _Demo(options).play(started)
    return 0


def _prepare(folder: Path) -> None:
    """Make ``folder`` an empty demo folder, refusing to empty anything else."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise UsageError(
                f"{folder} is not empty and was not made by `glam demo`",
                hint="pass --dir with a new or empty folder",
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `glam demo`; the next run empties this folder\n")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter commands)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


class _Demo:
    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.echo = options.echo
        self.folder = options.folder
        self.db = self.folder / "glam.db"
        self.repo = SampleRepo(self.folder / "repo")
        # What the current act saw: traffic weights per function; and act 3's trigger, set
        # when BROKEN's new version gets canary traffic while ``armed``.
        self.weights: dict[str, list[float]] = {}
        self.streams: dict[str, str] = {}  # function name -> its stream in the log
        self.mid_canary: int | None = None  # log position of act 2's 50 % step
        self.armed = False
        self.shifted = anyio.Event()

    def play(self, started: float) -> None:
        anyio.run(self._play, started, backend="asyncio")

    # -- the acts --------------------------------------------------------------------------

    async def _play(self, started: float) -> None:
        # Imported here: the embedded AWS needs the optional 'local' extra (moto).
        from engine.local import Fidelity, LocalAws
        from engine.local.account import build_account

        self.echo("glam demo: GitOps for AWS Lambda, end to end, on an embedded AWS")
        self.echo(f"  working folder: {_shown(self.folder)}")
        self.echo("  starting the embedded AWS (moto behind glam's fidelity proxy) ...")
        async with LocalAws(fidelity=Fidelity()) as aws:
            self.echo(f"  embedded AWS on {aws.endpoint_url}")
            self.echo("    fidelity on: Pending states, 409 conflicts, the 15 requests/s quota")
            outputs = await build_account(aws.endpoint_url, region=aws.region)
            self.echo("  account built: execution role, S3 code bucket, SQS queue, HTTP API,")
            self.echo("    ALB target group, CloudWatch alarms; terraform-style outputs")
            files = initial_files(outputs, wait=self.options.wait)
            await anyio.to_thread.run_sync(self._init_repo, files)
            self.echo(f"  sample repository: {_shown(self.repo.path)} (branch main)")
            for fn in FUNCTIONS:
                self.echo(f"    {fn.prefix}_*.json  ->  {fn.name}  ({fn.role})")

            config = EngineConfig(
                repo=str(self.repo.path.resolve()),
                db=self.db,
                branch=SampleRepo.BRANCH,
                region=aws.region,
                endpoint_url=aws.endpoint_url,
                poll=1.0,
                data_dir=self.folder / "engine",
                policy=DEMO_POLICY,
                access_key_id=aws.credentials.access_key_id,
                secret_access_key=aws.credentials.secret_access_key,
            )
            async with Engine(config, on_event=self._on_event) as engine:
                await self._act1(engine)
                await self._act2(engine)
                await self._act3(engine, aws.endpoint_url)
                await self._act4(engine)
                last = await engine.store.last_position()
            self.echo("")
            self.echo(f"glam demo: all four acts done in {time.monotonic() - started:.0f} s")
            await anyio.to_thread.run_sync(self._tour, last)
            if self.options.keep:
                await self._keep(aws)

    def _init_repo(self, files: dict[str, Any]) -> None:
        self.repo.init()
        self.repo.write(files)
        (self.repo.path / "README.md").write_text(
            "# glam demo repository\n\nWritten by `glam demo`. Each folder under `lambda/` "
            "holds one Lambda function in Gitmoxi's format.\n"
        )
        self.repo.commit("orders (SQS), hello (HTTP API) and status (ALB)")

    async def _act1(self, engine: Engine) -> None:
        self._headline(
            1,
            "first deployment",
            "The first commit holds three functions; glam creates each one, publishes "
            "version 1, points alias PROD at it and attaches its event source to the alias.",
        )
        report = await self._run(engine)
        self._expect(report, {fn.name: "succeeded" for fn in FUNCTIONS})

    async def _act2(self, engine: Engine) -> None:
        self._headline(
            2,
            "a canary",
            f"A commit changes {CANARY.name} to the green code. glam publishes version 2, "
            f"sends it 50 % of PROD's traffic for {self.options.wait} s while watching alarm "
            f"{LATENCY_ALARM}, then 100 %, then promotes it and deletes version 1.",
        )
        await self._commit(
            {f"{CANARY.prefix}_lambdadef.json": green_definition()}, "hello: green release"
        )
        report = await self._run(engine)
        self._expect(report, {CANARY.name: "succeeded"})
        weights = self.weights.get(CANARY.name, [])
        if weights != [0.5, 1.0]:
            raise DemoFailed(
                f"the canary shifted weights {weights}, expected [0.5, 1.0]",
                hint=f"inspect the log: glam events --db {_shown(self.db)}",
            )

    async def _act3(self, engine: Engine, endpoint_url: str) -> None:
        from engine.local.account import put_alarm_datapoint, set_alarm_state

        self._headline(
            3,
            "an alarm and a rollback",
            f"A commit ships a broken {BROKEN.name}: it points at the wrong zip. It deploys, "
            f"and during the canary its alarm {ERRORS_ALARM} fires: glam puts PROD back on "
            "version 1, routing cleared, and deletes the broken version.",
        )
        await self._commit(
            {f"{BROKEN.prefix}_lambdadef.json": broken_definition()}, "status: wrong zip"
        )
        self.armed = True
        try:
            async with anyio.create_task_group() as tg:

                async def fire() -> None:
                    # Plays CloudWatch: real errors from the canary would trip the alarm.
                    await self.shifted.wait()
                    self.echo("  (the broken version now serves canary traffic and fails;")
                    self.echo(
                        f"   the demo reports {DEMO_ERRORS:g} errors and sets CloudWatch alarm "
                        f"{ERRORS_ALARM} to ALARM)"
                    )
                    await put_alarm_datapoint(endpoint_url, ERRORS_ALARM, DEMO_ERRORS)
                    await set_alarm_state(endpoint_url, ERRORS_ALARM, "ALARM")

                tg.start_soon(fire)
                report = await self._run(engine)
                tg.cancel_scope.cancel()
        finally:
            self.armed = False
        self._expect(report, {BROKEN.name: "rolled_back"})
        # The incident is over: the next deployment must not be rolled back by it.
        await set_alarm_state(endpoint_url, ERRORS_ALARM, "OK")

    async def _act4(self, engine: Engine) -> None:
        self._headline(
            4,
            "a delete",
            f"A commit deletes {RETIRED.prefix}_lambdadef.json: glam detaches the queue's "
            f"event source mapping and deletes {RETIRED.name}.",
        )

        def change() -> str:
            self.repo.remove(f"{RETIRED.prefix}_lambdadef.json")
            return self.repo.commit("orders: retire the function")

        commit = await anyio.to_thread.run_sync(change)
        self.echo(f"  commit {commit[:8]} orders: retire the function")
        report = await self._run(engine)
        self._expect(report, {RETIRED.name: "succeeded"})

    # -- helpers ---------------------------------------------------------------------------

    def _headline(self, number: int, title: str, explain: str) -> None:
        self.echo("")
        self._rule(f"{number}/4 {title}")
        for line in textwrap.wrap(explain, 92):
            self.echo(f"  {line}")

    def _rule(self, title: str) -> None:
        self.echo(f"== {title} ".ljust(78, "="))

    async def _commit(self, files: dict[str, Any], message: str) -> None:
        def change() -> str:
            self.repo.write(files)
            return self.repo.commit(message)

        commit = await anyio.to_thread.run_sync(change)
        self.echo(f"  commit {commit[:8]} {message}")

    async def _run(self, engine: Engine) -> RunReport:
        self.weights = {}
        self.shifted = anyio.Event()
        started = time.monotonic()
        report = await engine.run(once=True)
        self.echo(f"  engine: branch head reconciled in {time.monotonic() - started:.1f} s")
        return report

    def _on_event(self, record: RecordedEvent) -> None:
        line = narrate(record)
        if line is not None:
            self.echo(line)
        event = record.event
        if not record.stream.startswith(FUNCTION_PREFIX):
            return
        name = _name_of(record.stream)
        self.streams[name] = record.stream
        if isinstance(event, TrafficShifted):
            self.weights.setdefault(name, []).append(event.weight)
            if name == CANARY.name and event.weight < 1.0 and self.mid_canary is None:
                self.mid_canary = record.position
            if self.armed and name == BROKEN.name and event.weight < 1.0:
                self.shifted.set()

    def _expect(self, report: RunReport, outcomes: dict[str, str]) -> None:
        seen = {_name_of(stream): f.outcome for stream, f in report.finished}
        problems = [
            f"{name}: {seen.get(name, 'not finished')} (expected {want})"
            for name, want in outcomes.items()
            if seen.get(name) != want
        ]
        problems += [f"rejected: {r.model_dump_json()}" for r in report.rejected]
        problems += report.errors
        if report.unavailable:
            problems.append(f"repository unavailable: {report.unavailable}")
        if problems:
            raise DemoFailed(
                "the act did not end as expected: " + "; ".join(problems),
                hint=f"inspect the log: glam events --db {_shown(self.db)}",
            )

    def _tour(self, last: int) -> None:
        """Runs in a worker thread: the query commands run their own event loop."""
        from engine.cli.query import events, status

        db = _shown(self.db)
        self.echo("")
        self._rule(f"glam status --db {db}")
        status(function=None, db=str(self.db), as_json=False)
        self.echo("")
        self._rule(f"the last {LAST_EVENTS} events (glam events --db {db})")
        events(db=str(self.db), since=str(max(1, last - LAST_EVENTS + 1)), limit=LAST_EVENTS)
        self.echo("")
        self._rule("what to do next")
        self.echo(f"  the event log:         {db}")
        self.echo(
            f"  the sample repository: {_shown(self.repo.path)} (a git repository: try git log)"
        )
        commands = [
            (f"glam status --db {db}", "every function, as glam sees it"),
            (f"glam events --db {db} --type TrafficShifted", "every traffic shift"),
            (
                f"glam events --db {db} --stream {self.streams[BROKEN.name]}",
                "act 3, step by step",
            ),
            (f"glam replay --verify --db {db}", "prove the log was not altered"),
            (
                f"glam whatif {BROKEN.name} --alarm-threshold {ERRORS_ALARM}=5 --db {db}",
                "act 3 had the alarm been at 5 errors",
            ),
        ]
        if self.mid_canary is not None:
            commands.append(
                (f"glam replay --at {self.mid_canary} --db {db}", "the state during the canary")
            )
        width = max(len(why) for _, why in commands) + 1
        for command, why in commands:
            self.echo(f"  {(why + ':').ljust(width)}  {command}")
        if not _on_path("glam"):
            self.echo("  (glam is in .venv/bin: `source .venv/bin/activate`, or `uv run glam ...`)")
        if not self.options.keep:
            self.echo("")
            self.echo(
                f"the dashboard: http://127.0.0.1:{DASHBOARD_PORT}/dashboard/ once "
                f"`glam dashboard --db {db}` serves it (`./scripts/demo --keep` does)"
            )

    async def _keep(self, aws: Any) -> None:
        from engine.runtime.clock import SystemClock
        from engine.server.dashboard import dashboard_url, read_only_auth, serve_log
        from engine.store.sqlite import SqliteEventStore

        async with (
            SqliteEventStore(self.db, readonly=True) as store,
            anyio.create_task_group() as tg,
        ):
            serve = (serve_log, store, SystemClock(), read_only_auth(), "127.0.0.1")
            try:
                bound = await tg.start(*serve, DASHBOARD_PORT)
            except GlamError:  # the port is taken (another dashboard): any free one
                bound = await tg.start(*serve, 0)
            self.echo("")
            self.echo(f"The embedded AWS keeps running on {aws.endpoint_url}; Ctrl-C stops it.")
            self.echo(
                f"  export AWS_ENDPOINT_URL={aws.endpoint_url} AWS_DEFAULT_REGION={aws.region}"
            )
            self.echo("  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
            self.echo(f"the dashboard (read-only, the demo's log): {dashboard_url(bound)}")
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            tg.cancel_scope.cancel()
        self.echo("glam demo: the dashboard and the embedded AWS stopped")


def _name_of(stream: str) -> str:
    return parse_function_stream(stream)[2]


def _on_path(command: str) -> bool:
    """Whether ``command`` works as typed in the caller's shell (``scripts/demo`` passes the
    PATH it was started with, before it put .venv/bin on its own)."""
    return shutil.which(command, path=os.environ.get("GLAM_CALLER_PATH")) is not None


__all__ = ["DEFAULT_FOLDER", "DemoFailed", "DemoOptions", "run_demo"]
