"""Operator commands: ``glam promote``, ``glam abort``, ``glam retry``, ``glam allow-deletes``.

Each one checks the log, then appends one ``OperatorCommandIssued`` (actor and reason) to the
``ops`` stream of the same database the engine uses, usually while it runs in another process;
the engine hands it to its target (engine.runtime.operators). Both decide with the same
``engine.operator.decide_hand_over``, so a command accepted here is one the engine acts on
unless the saga moved on meanwhile. SQLite makes the second writer safe:
every append is one ``BEGIN IMMEDIATE`` transaction that reads the chain's last hash inside it,
and a writer waits up to the busy timeout for the other.

    glam abort orders --reason "p99 up since the canary"    the canary rolls back
    glam promote orders --reason "verified by hand"         skip the rest of the schedule
    glam retry orders --reason "the bucket is fixed"        deploy the rolled-back state again
    glam allow-deletes 4f2a91c --reason "retiring orders"   release the held deletes

A check that fails prints one line and exits 1; a missing ``--reason`` is a usage error (2).
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, current_views, db_path
from engine.errors import GlamError, StoreError, UsageError
from engine.events import Metadata, NewEvent, RecordedEvent
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.operator import Refusal, Target, decide_hand_over
from engine.planner import deployed_from_events, head_action, held_deletes
from engine.ports import ANY_VERSION
from engine.saga import fold, initial_state
from engine.store.sqlite import SqliteEventStore
from engine.streams import FUNCTION_PREFIX, REPO_PREFIX, is_function_stream, parse_function_stream

Command = Literal["promote", "abort", "retry", "allow_deletes"]


@dataclass(frozen=True, slots=True)
class Issued:
    """A command as recorded: the ``ops`` event, and the target it was resolved to."""

    record: RecordedEvent
    target: str


def default_actor() -> str:
    """The OS user name, the default ``--actor``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a bare container)
        return "unknown"


async def resolve_function(store: SqliteEventStore, function: str) -> str:
    """The stream of ``function``: a full ``fn:ACCOUNT:REGION:NAME`` the log knows, or a name
    that exactly one function of the functions view has."""
    if function.startswith(FUNCTION_PREFIX):
        if not is_function_stream(function):
            raise UsageError(
                f"{function!r} is not a function stream",
                hint="pass a function name or fn:ACCOUNT:REGION:NAME",
            )
        if await store.stream_version(function) == 0:
            raise GlamError(
                f"unknown function {function}", hint="run `glam status` to list the functions"
            )
        return function
    views = await current_views(store)
    streams = sorted(r.stream for r in views.functions.values() if r.name == function)
    if not streams:
        raise GlamError(
            f"unknown function {function!r}", hint="run `glam status` to list the functions"
        )
    if len(streams) > 1:
        raise GlamError(
            f"function name {function!r} is ambiguous: {', '.join(streams)}",
            hint="pass the full stream fn:ACCOUNT:REGION:NAME",
        )
    return streams[0]


@dataclass(frozen=True, slots=True)
class Checked:
    """What a command was checked against: its target (a function stream or a full commit
    sha) and, for a function, the deployment it acts on."""

    target: str
    deployment_id: str | None = None


async def check_command(
    store: SqliteEventStore, command: Command, target: str, *, actor: str = "operator"
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
        plans = await store.read_selected(types={"CommitPlanned"})
        head = head_action((r.event for r in plans if r.stream.startswith(REPO_PREFIX)), stream)
        known = Target(deployed=deployed_from_events(records).get(stream), head=head)
    else:
        name = parse_function_stream(stream)[2]
        known = Target(saga=fold(initial_state(name), [r.event for r in records]))
    given = OperatorCommandIssued(command=command, target=stream, reason="(checking)")
    # The request a retry would make is not kept: only whether it can be made counts here.
    decision = decide_hand_over(given, known, actor=actor, new_id=lambda: "checking")
    if isinstance(decision, Refusal):
        raise GlamError(decision.reason, hint=decision.hint)
    return Checked(stream, decision.deployment_id)


async def issue(
    db: Path,
    command: Command,
    target: str,
    *,
    reason: str,
    actor: str,
    event_id: str | None = None,
) -> Issued:
    """Check ``command`` against the log at ``db`` and append it to the ``ops`` stream."""
    if not reason.strip():
        raise UsageError("--reason must not be empty", hint="say why, for the audit log")
    if not await anyio.Path(db).is_file():
        # Opening for writing would create an empty log: refuse instead.
        raise StoreError(
            f"no event log at {db}", hint="point --db / $GLAM_DB at the engine's database"
        )
    # Checked on a read-only connection (it never creates a log), appended on a writing one.
    async with SqliteEventStore(db, readonly=True) as reader:
        checked = await check_command(reader, command, target, actor=actor)
    resolved = checked.target
    new = NewEvent(
        OperatorCommandIssued(
            command=command,
            target=resolved,
            reason=reason,
            deployment_id=checked.deployment_id,
        ),
        Metadata(event_id=event_id or uuid.uuid4().hex, actor=actor),
    )
    async with SqliteEventStore(db, check=False) as store:  # checked just above
        [record] = await store.append(OPS_STREAM, [new], expected_version=ANY_VERSION)
    return Issued(record=record, target=resolved)


async def _held_sha(store: SqliteEventStore, sha: str) -> str:
    """The full sha of a commit whose deletes are held now; ``sha`` may be abbreviated."""
    if len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha.lower()):
        raise UsageError(f"{sha!r} is not a commit sha", hint="pass at least 7 hex digits")
    held_in = {
        r.stream
        for r in await store.read_selected(types={"DeletesHeld"})
        if r.stream.startswith(REPO_PREFIX) and r.event.sha.startswith(sha.lower())  # type: ignore[union-attr]
    }
    matches: set[str] = set()
    for stream in sorted(held_in):
        held = held_deletes(r.event for r in await store.read_stream(stream))
        matches.update(s for s in held if s.startswith(sha.lower()))
    if not matches:
        raise GlamError(
            f"no deletes are held for commit {sha}",
            hint="`glam events --type DeletesHeld` lists held commits; only the latest "
            "planned commit's deletes can be allowed",
        )
    if len(matches) > 1:
        raise GlamError(f"commit {sha} is ambiguous: {', '.join(sorted(matches))}")
    return matches.pop()


# -- the commands ----------------------------------------------------------------------------

ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why (recorded with the command).", show_default=False)
]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who gives it. Default: the OS user name.", show_default=False),
]
FunctionArg = Annotated[
    str, typer.Argument(help="A function name or stream fn:ACCOUNT:REGION:NAME.")
]

_EFFECT = {
    "promote": "the deployment in flight promotes at its next safe point (alarms read once)",
    "abort": "the deployment in flight rolls back at its next safe point",
    "retry": "the engine requests the rolled-back desired state again",
    "allow_deletes": "the engine plans the held deletes",
}


def _run(command: Command, target: str, reason: str, actor: str | None, db: Path | None) -> None:
    issued = anyio.run(
        lambda: issue(db_path(db), command, target, reason=reason, actor=actor or default_actor())
    )
    name = command.replace("_", "-")
    print(
        f"{name} {issued.target} recorded by {issued.record.meta.actor} "
        f"(ops #{issued.record.version}): {_EFFECT[command]}"
    )


@app.command()
def promote(
    function: FunctionArg, reason: ReasonOption, actor: ActorOption = None, db: DbOption = None
) -> None:
    """Promote the deployment in flight now: skip the rest of its schedule and bake."""
    _run("promote", function, reason, actor, db)


@app.command()
def abort(
    function: FunctionArg, reason: ReasonOption, actor: ActorOption = None, db: DbOption = None
) -> None:
    """Abort the deployment in flight: roll back to the stable version."""
    _run("abort", function, reason, actor, db)


@app.command()
def retry(
    function: FunctionArg, reason: ReasonOption, actor: ActorOption = None, db: DbOption = None
) -> None:
    """Deploy the rolled-back desired state of a function again."""
    _run("retry", function, reason, actor, db)


@app.command("allow-deletes")
def allow_deletes(
    sha: Annotated[str, typer.Argument(help="The commit whose held deletes to allow.")],
    reason: ReasonOption,
    actor: ActorOption = None,
    db: DbOption = None,
) -> None:
    """Allow the deletes the planner held for a commit (too large a share of functions)."""
    _run("allow_deletes", sha, reason, actor, db)
