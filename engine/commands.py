"""Operator commands as given: check one against the log, then append it to the ``ops`` stream.

    checked = await check_command(store, "abort", "orders")       # or raises, saying why not
    record = await append_command(store, "abort", checked, reason=..., actor=...)
    issued = await issue_command(store, "abort", "orders", reason=..., actor=...)   # both

``glam promote|abort|retry|allow-deletes`` (``engine.cli.ops``) and the server's write
endpoints (``engine.server.api``) give commands through these functions and nothing else, so a
command is recorded the same way whoever gives it: one ``OperatorCommandIssued`` with actor and
reason, which the engine hands over to its target (``engine.runtime.operators``). Both the
check here and the hand-over decide with ``engine.operator.decide_hand_over``.

The store is any event store that also keeps the views (SQLite or PostgreSQL, the engine's own
or one opened for the command).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import get_args

from engine.cli.common import current_views
from engine.deployed import deployed_from_events
from engine.errors import GlamError, UsageError
from engine.events import Metadata, NewEvent, RecordedEvent
from engine.events.operator import OPS_STREAM, OperatorCommand, OperatorCommandIssued
from engine.operator import Refusal, Target, decide_hand_over
from engine.ports import ANY_VERSION, EventStore, ProjectionStore
from engine.replan import head_action, held_deletes
from engine.runtime.report import read_log
from engine.saga import fold, initial_state
from engine.streams import FUNCTION_PREFIX, REPO_PREFIX, is_function_stream, parse_function_stream

Command = OperatorCommand
COMMANDS: tuple[Command, ...] = get_args(OperatorCommand)


@dataclass(frozen=True, slots=True)
class Issued:
    """A command as recorded: the ``ops`` event, and the target it was resolved to."""

    record: RecordedEvent
    target: str


@dataclass(frozen=True, slots=True)
class Checked:
    """What a command was checked against: its target (a function stream or a full commit
    sha) and, for a function, the deployment it acts on."""

    target: str
    deployment_id: str | None = None


class UnknownTarget(GlamError):
    """The function or commit a command names is not in the log (the API answers 404)."""


class AmbiguousTarget(GlamError):
    """The name or abbreviated sha a command gives matches more than one target."""


class CommandRefused(GlamError):
    """The command cannot act on its target now (the API answers 409)."""


async def resolve_function(store: ProjectionStore, function: str) -> str:
    """The stream of ``function``: a full ``fn:ACCOUNT:REGION:NAME`` the log knows, or a name
    that exactly one function of the functions view has."""
    if function.startswith(FUNCTION_PREFIX):
        if not is_function_stream(function):
            raise UsageError(
                f"{function!r} is not a function stream",
                hint="pass a function name or fn:ACCOUNT:REGION:NAME",
            )
        if await store.stream_version(function) == 0:
            raise UnknownTarget(
                f"unknown function {function}", hint="run `glam status` to list the functions"
            )
        return function
    views = await current_views(store)
    streams = sorted(r.stream for r in views.functions.values() if r.name == function)
    if not streams:
        raise UnknownTarget(
            f"unknown function {function!r}", hint="run `glam status` to list the functions"
        )
    if len(streams) > 1:
        raise AmbiguousTarget(
            f"function name {function!r} is ambiguous: {', '.join(streams)}",
            hint="pass the full stream fn:ACCOUNT:REGION:NAME",
        )
    return streams[0]


async def check_command(
    store: ProjectionStore,
    command: Command,
    target: str,
    *,
    actor: str = "operator",
    seconds: int | None = None,
) -> Checked:
    """Resolve and check ``target`` for ``command``: the stream (or full commit sha) the
    command will name, and the deployment it was checked against (in flight for abort and
    promote, rolled back for retry). Raises a ``GlamError`` saying why it cannot apply: the
    refusal the engine would record if it were handed over now."""
    if command == "allow_deletes":
        return Checked(await _held_sha(store, target))
    stream = await resolve_function(store, target)
    records = await store.read_stream(stream)
    if command == "retry":
        plans = await selected(store, {"CommitPlanned"})
        head = head_action((r.event for r in plans if r.stream.startswith(REPO_PREFIX)), stream)
        known = Target(deployed=deployed_from_events(records).get(stream), head=head)
    else:
        name = parse_function_stream(stream)[2]
        known = Target(saga=fold(initial_state(name), [r.event for r in records]))
    given = OperatorCommandIssued(
        command=command, target=stream, reason="(checking)", seconds=seconds
    )
    # The request a retry would make is not kept: only whether it can be made counts here.
    decision = decide_hand_over(given, known, actor=actor, new_id=lambda: "checking")
    if isinstance(decision, Refusal):
        raise CommandRefused(decision.reason, hint=decision.hint)
    return Checked(stream, decision.deployment_id)


async def append_command(
    store: EventStore,
    command: Command,
    checked: Checked,
    *,
    reason: str,
    actor: str,
    event_id: str | None = None,
    seconds: int | None = None,
) -> RecordedEvent:
    """Append the checked ``command`` to the ``ops`` stream. ``event_id`` makes a repeated
    append (a retried request) store nothing new; ``seconds`` is an extend's length."""
    new = NewEvent(
        OperatorCommandIssued(
            command=command,
            target=checked.target,
            reason=reason,
            deployment_id=checked.deployment_id,
            seconds=seconds,
        ),
        Metadata(event_id=event_id or uuid.uuid4().hex, actor=actor),
    )
    [record] = await store.append(OPS_STREAM, [new], expected_version=ANY_VERSION)
    return record


_UNITS = {"s": 1, "m": 60, "h": 3600}
EXTEND_MAX_SECONDS = 86_400


def parse_duration(text: str) -> int:
    """``"10m"`` -> 600: a length given as a whole number of seconds, minutes or hours
    (``30s``, ``10m``, ``2h``; a bare number is seconds), at most a day."""
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS else "s"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    if not number.isdigit() or int(number) <= 0:
        raise UsageError(
            f"{text!r} is not a length", hint="a whole number and s, m or h: 30s, 10m, 2h"
        )
    seconds = int(number) * _UNITS[unit]
    if seconds > EXTEND_MAX_SECONDS:
        raise UsageError(f"{text!r} is more than a day", hint="extend by 24h at most at a time")
    return seconds


def check_reason(reason: str) -> None:
    if not reason.strip():
        raise UsageError("--reason must not be empty", hint="say why, for the audit log")


async def issue_command(
    store: ProjectionStore,
    command: Command,
    target: str,
    *,
    reason: str,
    actor: str,
    event_id: str | None = None,
    seconds: int | None = None,
) -> Issued:
    """Check ``command`` against the log of ``store`` and append it to the ``ops`` stream.
    A command whose ``event_id`` the stream already holds is that command: it is returned
    as recorded, neither checked again (it may have acted since) nor appended twice."""
    check_reason(reason)
    if event_id is not None:
        for record in await store.read_stream(OPS_STREAM):
            if record.meta.event_id == event_id and isinstance(record.event, OperatorCommandIssued):
                return Issued(record=record, target=record.event.target)
    checked = await check_command(store, command, target, actor=actor, seconds=seconds)
    record = await append_command(
        store, command, checked, reason=reason, actor=actor, event_id=event_id, seconds=seconds
    )
    return Issued(record=record, target=checked.target)


async def selected(store: EventStore, types: Collection[str]) -> list[RecordedEvent]:
    """The events of ``types``, in log order: the store's own selective read when it has one
    (SQLite), else a scan of the log."""
    read = getattr(store, "read_selected", None)
    if read is not None:
        records: list[RecordedEvent] = await read(types=types)
        return records
    return [r async for r in read_log(store) if r.type in types]


async def _held_sha(store: ProjectionStore, sha: str) -> str:
    """The full sha of a commit whose deletes are held now; ``sha`` may be abbreviated."""
    if len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha.lower()):
        raise UsageError(f"{sha!r} is not a commit sha", hint="pass at least 7 hex digits")
    held_in = {
        r.stream
        for r in await selected(store, {"DeletesHeld"})
        if r.stream.startswith(REPO_PREFIX) and r.event.sha.startswith(sha.lower())  # type: ignore[union-attr]
    }
    matches: set[str] = set()
    for stream in sorted(held_in):
        held = held_deletes(r.event for r in await store.read_stream(stream))
        matches.update(s for s in held if s.startswith(sha.lower()))
    if not matches:
        raise CommandRefused(
            f"no deletes are held for commit {sha}",
            hint="`glam events --type DeletesHeld` lists held commits; only the latest "
            "planned commit's deletes can be allowed",
        )
    if len(matches) > 1:
        raise AmbiguousTarget(f"commit {sha} is ambiguous: {', '.join(sorted(matches))}")
    return matches.pop()
