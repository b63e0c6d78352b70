"""The operator hand-over: every ``ops_poll`` seconds, hand each new command of the ``ops``
stream (``glam abort``, ``promote``, ``retry``, ``allow-deletes``, possibly given from another
process) to its target as an ``OperatorRequested``.

What a command records is decided by the pure ``engine.operator.decide_hand_over``, the same
function the CLI checked it with when it was given; this module only reads what the decision
needs and appends what it says. A command that can no longer act (only a race with the saga
lands here) is recorded as ignored, with why, so it never reaches a later deployment.

Each command is acted on exactly once: the copy handed to the target carries the command's
event id as causation, and event ids made from it, so a repeated append is a no-op; commands
whose copy the log already holds are skipped, also after a restart.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import anyio

from engine.deployed import deployed_from_events
from engine.errors import FencedOut, GlamError, StoreError
from engine.events import RecordedEvent, stamped
from engine.events.catalog import Event
from engine.events.function import OperatorRequested
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.events.repo import PlannedAction
from engine.logs import get_logger
from engine.observe import Fetched
from engine.operator import HandOver, Target, decide_hand_over
from engine.ports import ANY_VERSION, Clock, EventStore
from engine.replan import head_action, held_deletes
from engine.runtime.fleet import Fleet
from engine.runtime.report import EventHook
from engine.runtime.repository import Repository
from engine.runtime.saga_runner import load_saga
from engine.runtime.wake import Wakeup
from engine.saga import SagaPolicy
from engine.streams import is_function_stream

log = get_logger("engine")


class Operators:
    """Hands the ``ops`` stream's commands over, in order, one pass at a time and never while
    a branch of ``fleet`` plans (an allow-deletes plans too, as the branch that holds the
    commit's removals)."""

    def __init__(
        self,
        store: EventStore,
        fleet: Fleet,
        *,
        policy: SagaPolicy,
        ids: Callable[[], str],
        on_event: EventHook,
        start_saga: Callable[[str], None],
    ) -> None:
        self._store = store
        self._fleet = fleet
        self._policy = policy
        self._ids = ids
        self._on_event = on_event
        self._start_saga = start_saga
        self._version = 0  # how far the ``ops`` stream is read
        self._handled: set[str] = set()  # commands whose copy the log holds
        self.wake = Wakeup()  # a command given through the API is handed over at once

    def recovering(self, record: RecordedEvent) -> None:
        """Note a command the log read at start already holds a copy of."""
        if isinstance(record.event, OperatorRequested) and record.meta.causation_id:
            self._handled.add(record.meta.causation_id)

    async def loop(self, interval: float, clock: Clock) -> None:
        """A pass every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.run_pass()
            except FencedOut:
                # Shared mode: the plan shard went to another engine, which stops this loop.
                log.info("%s: the plan shard's lease is lost", "operator commands")
            except StoreError:
                raise
            except GlamError as exc:
                log.error("operator commands: %s", exc.one_line())
            await self.wake.nap(interval, clock.sleep)

    async def run_pass(self) -> None:
        """Hand every new command over, in order. A command that must wait (an allow-deletes
        while the branch is not known) is skipped for this pass only: the ones after it are
        still handed over, and the position stays before it."""
        async with self._fleet.lock:
            deferred = False
            for record in await self._store.read_stream(OPS_STREAM, self._version + 1):
                command = record.event
                if (
                    isinstance(command, OperatorCommandIssued)
                    and record.meta.event_id not in self._handled
                ):
                    if not await self._hand_over(record, command):
                        deferred = True  # the next pass starts from here again
                        continue
                    self._handled.add(record.meta.event_id)
                if not deferred:
                    self._version = record.version

    async def _hand_over(self, record: RecordedEvent, command: OperatorCommandIssued) -> bool:
        """Act on one command; False when it must wait for a later pass."""
        target = await self._target(command)
        if target is None:
            return False
        actor = record.meta.actor
        decision = decide_hand_over(command, target, actor=actor, new_id=self._ids)
        what = f"{command.command} of {command.target} by {actor}"
        if not isinstance(decision, HandOver):
            log.warning("%s ignored: %s", what, decision.reason)
            await self._append(decision.stream, decision.events, record, commit=None)
            return True
        if command.command == "allow_deletes":
            # Planned again with the guard lifted, before the copy is recorded: deletes
            # already requested are not requested twice, so a crash in between only plans
            # this once more.
            repository = self._fleet.for_stream(decision.stream)
            assert repository is not None  # _target found the held commit on its stream
            await repository.catch_up()
            observation = Fetched(head=command.target, commits=())
            await repository.plan(decision.stream, observation, allow_deletes=True)
            await self._append(decision.stream, decision.events, record, commit=decision.commit)
            log.info("deletes of %s allowed by %s", command.target[:12], actor)
            return True
        await self._append(decision.stream, decision.events, record, commit=decision.commit)
        log.info(
            "%s: %s requested by %s (deployment %s)",
            decision.stream,
            command.command,
            actor,
            decision.deployment_id,
        )
        self._start_saga(decision.stream)
        return True

    async def _target(self, command: OperatorCommandIssued) -> Target | None:
        """What the log says about the command's target; None when it must wait."""
        repositories = self._fleet.repositories
        if command.command == "allow_deletes":
            for repository in repositories:
                repo = repository.stream
                if repo is None:
                    continue
                held = held_deletes(r.event for r in await self._store.read_stream(repo))
                if command.target in held:
                    return Target(repo_stream=repo, held=frozenset(held))
            if any(r.stream is None for r in repositories):
                return None  # a branch is learnt from its first fetch: it may hold it
            return Target(repo_stream=None)
        stream = command.target
        if not is_function_stream(stream):
            return Target()
        if command.command == "retry":
            deployed = deployed_from_events(await self._store.read_stream(stream)).get(stream)
            return Target(deployed=deployed, head=await self._head(repositories, stream))
        saga, _ = await load_saga(self._store, stream, self._policy)
        return Target(saga=saga)

    async def _head(self, repositories: Sequence[Repository], stream: str) -> PlannedAction | None:
        """What the latest plan of any watched branch wants of function ``stream``."""
        planned: list[RecordedEvent] = []
        for repository in repositories:
            if repository.stream is not None:
                planned.extend(await self._store.read_stream(repository.stream))
        planned.sort(key=lambda r: r.position)
        return head_action((r.event for r in planned), stream)

    async def _append(
        self,
        stream: str,
        events: Sequence[Event],
        command: RecordedEvent,
        *,
        commit: str | None,
    ) -> None:
        cause = command.meta.event_id
        # Ids made from the command's id: appending the same hand-over again (after a crash
        # right after it) stores nothing new.
        batch = stamped(
            events,
            (f"{cause}:handed:{index}" for index in itertools.count()),
            actor=command.meta.actor,
            commit=commit,
            causation_id=cause,
        )
        with anyio.CancelScope(shield=True):
            recorded = await self._store.append(stream, batch, expected_version=ANY_VERSION)
        for rec in recorded:
            self._on_event(rec)  # folded by the next catch-up, in log order
