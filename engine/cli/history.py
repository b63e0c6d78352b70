"""``glam deployments`` and ``glam commits``: what happened, read from the views of the log.

    glam deployments orders                 the deployments of one function, newest last
    glam deployments --outcome rolled_back  every rollback, with its reason
    glam commits                            each commit: observed, planned, rejected, held

Both read the log read-only (the engine may be running, stopped or elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, current_views, read_log
from engine.cli.output import (
    Column,
    examples,
    format_seconds,
    format_time,
    parse_moment,
    print_json,
    table,
    unknown_function,
)
from engine.errors import UsageError
from engine.streams import FUNCTION_PREFIX, is_function_stream, parse_function_stream
from projections.commits import CommitRow
from projections.deployments import DeploymentRow
from projections.views import Views

Outcome = Literal["succeeded", "rolled_back", "failed", "superseded", "running"]


def _views(db: Any) -> Views:
    async def go() -> Views:
        async with read_log(db) as store:
            return await current_views(store)

    return anyio.run(go)


def function_name(stream: str) -> str:
    """A function stream's bare name (``fn:ACCOUNT:REGION:NAME`` → ``NAME``)."""
    if is_function_stream(stream):
        return parse_function_stream(stream)[2]
    return stream


def interventions(row: DeploymentRow) -> list[dict[str, str]]:
    """The operator commands handed to a deployment: command, actor and reason, in order."""
    out = []
    for step in row.steps:
        if step.kind == "operator":
            actor, _, reason = step.detail.partition(": ")
            out.append({"command": step.name, "actor": actor, "reason": reason})
    return out


def deployment_json(row: DeploymentRow) -> dict[str, Any]:
    """One deployment as ``glam deployments --json`` and ``glam wait --json`` print it."""
    duration = None
    if row.requested_at is not None and row.finished_at is not None:
        duration = (row.finished_at - row.requested_at).total_seconds()
    return {
        "deployment_id": row.deployment_id,
        "function": function_name(row.function),
        "stream": row.function,
        "commit": row.commit,
        "action": row.action,
        "state": row.state,
        "outcome": row.outcome or "running",
        "reason": row.reason,
        "started_at": None if row.requested_at is None else row.requested_at.isoformat(),
        "finished_at": None if row.finished_at is None else row.finished_at.isoformat(),
        "duration_seconds": duration,
        "stable_version": row.stable_version,
        "new_version": row.new_version,
        "interventions": interventions(row),
    }


def select_deployments(
    views: Views,
    *,
    function: str | None = None,
    outcome: Sequence[str] = (),
    commit: str | None = None,
    since: datetime | None = None,
) -> list[DeploymentRow]:
    """The deployments that pass the filters, oldest first (by when they were requested)."""
    rows: Iterable[DeploymentRow] = views.deployments.values()
    if function is not None:
        known = {function_name(r.function) for r in views.deployments.values()}
        if function.startswith(FUNCTION_PREFIX):
            rows = [r for r in rows if r.function == function]
        else:
            rows = [r for r in rows if function_name(r.function) == function]
        if not rows:
            raise unknown_function(function, known)
    if outcome:
        rows = [r for r in rows if (r.outcome or "running") in outcome]
    if commit is not None:
        rows = [r for r in rows if (r.commit or "").startswith(commit)]
    if since is not None:
        rows = [r for r in rows if r.requested_at is not None and r.requested_at >= since]
    return sorted(rows, key=lambda r: r.steps[0].position if r.steps else r.position)


@app.command(
    epilog=examples(
        "glam deployments                          # the last 20, every function",
        "glam deployments orders --limit 5",
        "glam deployments --outcome rolled_back --outcome failed --since 1d",
        "glam deployments --commit 4f2a91c --json",
    )
)
def deployments(
    function: Annotated[
        str | None, typer.Argument(help="A function name or stream fn:ACCOUNT:REGION:NAME.")
    ] = None,
    db: DbOption = None,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these outcomes: succeeded, rolled_back, failed, superseded, running "
            "(repeatable)."
        ),
    ] = None,
    commit: Annotated[str | None, typer.Option(help="Only deployments of this commit.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only those started since this time or this long ago (2h, 1d)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="The most recent this many.", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The history of deployments, oldest first: when each started and ended, how long it
    took, its outcome and why, the commit, and who intervened (promote, abort, retry)."""
    allowed = {"succeeded", "rolled_back", "failed", "superseded", "running"}
    for value in outcome or ():
        if value not in allowed:
            raise UsageError(
                f"unknown outcome {value!r}", hint="one of " + ", ".join(sorted(allowed))
            )
    moment = None
    if since is not None:
        parsed = parse_moment(since, option="--since")
        if isinstance(parsed, int):
            raise UsageError("--since takes a time here", hint="e.g. --since 2h or an ISO time")
        moment = parsed
    rows = select_deployments(
        _views(db), function=function, outcome=outcome or (), commit=commit, since=moment
    )[-limit:]
    if as_json:
        print_json([deployment_json(r) for r in rows])
        return
    table(
        f"deployments ({len(rows)})",
        [
            Column("function", min=8),
            "action",
            "started",
            "took",
            "outcome",
            "commit",
            Column("reason", wrap=True, min=12),
            Column("intervened", wrap=True),
        ],
        [
            (
                function_name(r.function),
                r.action,
                format_time(r.requested_at),
                format_seconds(
                    None
                    if r.finished_at is None or r.requested_at is None
                    else (r.finished_at - r.requested_at).total_seconds()
                ),
                r.outcome or r.state,
                (r.commit or "")[:7],
                r.reason,
                ", ".join(f"{i['command']} by {i['actor']}" for i in interventions(r)),
            )
            for r in rows
        ],
    )


def commit_json(row: CommitRow, views: Views) -> dict[str, Any]:
    """One commit as ``glam commits --json`` prints it, with its deployments' outcomes."""
    deployed = [views.deployments[d] for d in row.deployments if d in views.deployments]
    return {
        "sha": row.sha,
        "summary": row.summary,
        "author": row.author,
        "committed_at": row.committed_at,
        "observed": row.observed,
        "planned": [p.model_dump(mode="json") for p in row.planned],
        "rejected": [r.model_dump(mode="json") for r in row.rejections],
        "held_deletes": list(row.held_deletes),
        "deletes_allowed_by": row.deletes_allowed_by,
        "deployments": [deployment_json(d) for d in deployed],
    }


def _outcomes(row: CommitRow, views: Views) -> str:
    counts: dict[str, int] = {}
    for deployment_id in row.deployments:
        found = views.deployments.get(deployment_id)
        if found is not None:
            key = found.outcome or "running"
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


@app.command(
    epilog=examples(
        "glam commits                 # the last 20 commits glam saw",
        "glam commits --limit 5 --json",
    )
)
def commits(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="The most recent this many.", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Each commit glam saw, oldest first: observed, what its plan does, what it rejected,
    the deletes it holds for an operator, and how its deployments ended."""
    views = _views(db)
    rows = sorted(views.commits.values(), key=lambda r: r.position)[-limit:]
    if as_json:
        print_json([commit_json(r, views) for r in rows])
        return
    table(
        f"commits ({len(rows)})",
        [
            "commit",
            Column("summary", wrap=True, min=12),
            "observed",
            "planned",
            "rejected",
            Column("held deletes", wrap=True),
            Column("deployments", wrap=True),
        ],
        [
            (
                r.sha[:7],
                r.summary,
                "yes" if r.observed else "",
                sum(1 for p in r.planned if p.action != "nothing") or "",
                len(r.rejections) or "",
                ", ".join(r.held_deletes)
                + (f" (glam allow-deletes {r.sha[:12]})" if r.held_deletes else ""),
                _outcomes(r, views),
            )
            for r in rows
        ],
    )


__all__ = ["commit_json", "commits", "deployment_json", "deployments", "select_deployments"]
