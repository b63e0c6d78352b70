"""Operator commands: ``glam promote``, ``glam abort``, ``glam retry``, ``glam allow-deletes``,
``glam hold``, ``glam resume``, ``glam extend``.

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
    glam hold orders --reason "watching p99"               pause at the next bake
    glam resume orders --reason "p99 fine"                 the bake runs on
    glam extend orders --by 10m --reason "quiet night"     a longer bake
    glam promote orders --step --reason "canary fine"      one step on

A check that fails prints one line and exits 1; a missing ``--reason`` is a usage error (2).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, db_location
from engine.cli.output import examples, print_json
from engine.commands import (
    Command,
    Issued,
    append_command,
    check_command,
    check_reason,
    parse_duration,
)
from engine.errors import StoreError
from engine.events.operator import OperatorCommandIssued
from engine.store import is_postgres_url, make_store

__all__ = ["Command", "Issued", "default_actor", "issue"]


def default_actor() -> str:
    """The OS user name, the default ``--actor``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a bare container)
        return "unknown"


async def issue(
    db: Path | str,
    command: Command,
    target: str,
    *,
    reason: str,
    actor: str,
    event_id: str | None = None,
    seconds: int | None = None,
) -> Issued:
    """Check ``command`` against the log at ``db`` (an SQLite file or a PostgreSQL URL) and
    append it to the ``ops`` stream; the engine (on PostgreSQL, the one that plans) acts on
    it as it follows the log."""
    check_reason(reason)
    if not is_postgres_url(db) and not await anyio.Path(db).is_file():
        # Opening for writing would create an empty log: refuse instead.
        raise StoreError(
            f"no event log at {db}", hint="point --db / $GLAM_DB at the engine's database"
        )
    # Checked on a read-only connection (it never creates a log), appended on a writing one.
    async with make_store(db, readonly=True) as reader:
        checked = await check_command(reader, command, target, actor=actor, seconds=seconds)
    async with make_store(db, check=False) as store:  # checked just above
        record = await append_command(
            store,
            command,
            checked,
            reason=reason,
            actor=actor,
            event_id=event_id,
            seconds=seconds,
        )
    return Issued(record=record, target=checked.target)


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
    "hold": "the deployment in flight holds at its next bake (timer stopped, alarms watched)",
    "resume": "the held deployment's bake runs on for what was left of it",
    "extend": "the bake in progress (or the next one) lasts longer",
    "promote_step": "the bake in progress ends (alarms read once): the next step follows",
}


def _run(
    command: Command,
    target: str,
    reason: str,
    actor: str | None,
    db: str | None,
    as_json: bool = False,
    seconds: int | None = None,
) -> None:
    issued = anyio.run(
        lambda: issue(
            db_location(db),
            command,
            target,
            reason=reason,
            actor=actor or default_actor(),
            seconds=seconds,
        )
    )
    name = "promote --step" if command == "promote_step" else command.replace("_", "-")
    if as_json:
        event = issued.record.event
        assert isinstance(event, OperatorCommandIssued)
        print_json(
            {
                "command": command,
                "target": issued.target,
                "actor": issued.record.meta.actor,
                "reason": reason,
                "deployment_id": event.deployment_id,
                "seconds": event.seconds,
                "position": issued.record.position,
                "ops_version": issued.record.version,
                "effect": _EFFECT[command],
            }
        )
        return
    print(
        f"{name} {issued.target} recorded by {issued.record.meta.actor} "
        f"(ops #{issued.record.version}): {_EFFECT[command]}"
    )


@app.command(
    epilog=examples(
        'glam promote orders --reason "verified by hand"',
        'glam promote orders --step --reason "canary looks fine"',
        'glam promote fn:111111111111:eu-west-1:orders --reason "ok" --actor alice --json',
    )
)
def promote(
    function: FunctionArg,
    reason: ReasonOption,
    step: Annotated[
        bool,
        typer.Option("--step", help="Advance one step only: end the bake in progress."),
    ] = False,
    actor: ActorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Promote the deployment in flight now: skip the rest of its schedule and bake (with
    --step: end the bake in progress only, the next step follows)."""
    _run("promote_step" if step else "promote", function, reason, actor, db, as_json)


@app.command(epilog=examples('glam hold orders --reason "checking the p99 by hand"'))
def hold(
    function: FunctionArg,
    reason: ReasonOption,
    actor: ActorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hold the deployment in flight at its next bake: the bake timer stops, the alarms are
    still watched and still roll back, until `glam resume`."""
    _run("hold", function, reason, actor, db, as_json)


@app.command(epilog=examples('glam resume orders --reason "p99 is fine"'))
def resume(
    function: FunctionArg,
    reason: ReasonOption,
    actor: ActorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lift a hold: the bake runs on for what was left of it."""
    _run("resume", function, reason, actor, db, as_json)


@app.command(epilog=examples('glam extend orders --by 10m --reason "traffic is low at night"'))
def extend(
    function: FunctionArg,
    by: Annotated[
        str, typer.Option("--by", help="How much longer: 30s, 10m, 2h.", show_default=False)
    ],
    reason: ReasonOption,
    actor: ActorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make the bake in progress (or the next one) of the deployment in flight longer."""
    _run("extend", function, reason, actor, db, as_json, seconds=parse_duration(by))


@app.command(epilog=examples('glam abort orders --reason "p99 up since the canary"'))
def abort(
    function: FunctionArg,
    reason: ReasonOption,
    actor: ActorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Abort the deployment in flight: roll back to the stable version."""
    _run("abort", function, reason, actor, db, as_json)


@app.command(epilog=examples('glam retry orders --reason "the bucket is fixed"'))
def retry(
    function: FunctionArg,
    reason: ReasonOption,
    actor: ActorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy the rolled-back desired state of a function again."""
    _run("retry", function, reason, actor, db, as_json)


@app.command(
    "allow-deletes", epilog=examples('glam allow-deletes 4f2a91c --reason "retiring orders"')
)
def allow_deletes(
    sha: Annotated[str, typer.Argument(help="The commit whose held deletes to allow.")],
    reason: ReasonOption,
    actor: ActorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Allow the deletes the planner held for a commit (too large a share of functions)."""
    _run("allow_deletes", sha, reason, actor, db, as_json)
