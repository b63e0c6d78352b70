"""Read-only queries on the event log: ``glam events`` and ``glam status`` (``glam replay``
is in engine.cli.replay).

Every command opens the database read-only (``mode=ro`` and ``query_only``), so it can run
next to a live engine and can never change the log. Output is a rich table on a terminal,
plain text otherwise, and JSON with ``--json``. Function
environment values are shown as ``****`` unless ``--show-secrets`` is given. An event the log
cannot give back intact (its chain does not verify, or it does not decode) ends the command
with one line naming its position, exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from engine.branch_plans import PLAN_EVENT_TYPES, BranchPlan, latest_plans
from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, views_now, with_store
from engine.cli.db import chain_line
from engine.cli.output import (
    Column,
    did_you_mean,
    examples,
    is_terminal,
    parse_moment,
    print_json,
    table,
    unknown_function,
)
from engine.deployed import DEPLOYED_EVENT_TYPES, OWNER_EVENT_TYPES, deployed_from_events
from engine.drift.recorded import DRIFT_EVENT_TYPES, open_drift
from engine.errors import GlamError, StoreCorrupt, UsageError
from engine.events import RecordedEvent
from engine.events.catalog import EVENT_CLASSES
from engine.events.function import (
    DeploymentRequested,
    DriftDetected,
    FunctionOwner,
)
from engine.events.operator import OPS_STREAM
from engine.events.repo import DeletesHeld
from engine.logs import mask_environment
from engine.redact import repository_id
from engine.releases import ReleaseView, member_text, release_json, release_views
from engine.streams import FUNCTION_PREFIX, REPO_PREFIX, is_function_stream, parse_repo_stream
from projections.deployments import DeploymentRow
from projections.functions import FunctionRow
from projections.views import Views

if TYPE_CHECKING:
    from engine.store import Store

T = TypeVar("T")


ShowSecretsOption = Annotated[
    bool,
    typer.Option("--show-secrets", help="Show function environment values (**** otherwise)."),
]


def event_json(record: RecordedEvent, *, show_secrets: bool = False) -> dict[str, Any]:
    """One event as ``glam events --json`` prints it (and the API answers it); function
    environment values masked unless ``show_secrets``."""
    data = record.event.model_dump(mode="json", exclude={"type"})
    return {
        "position": record.position,
        "stream": record.stream,
        "version": record.version,
        "type": record.type,
        "recorded_at": record.recorded_at.isoformat(),
        "data": data if show_secrets else mask_environment(data),
        "meta": record.meta.model_dump(mode="json"),
        "hash": record.hash,
    }


def _summary(record: RecordedEvent) -> str:
    data = record.event.model_dump(mode="json", exclude={"type", "desired", "request", "result"})
    data = mask_environment(data)
    text = " ".join(f"{k}={v}" for k, v in data.items() if v not in (None, "", [], {}))
    return text if len(text) <= 100 else text[:99] + "…"


# -- filtering by repository and branch ---------------------------------------------------

RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo", help="Only this repository (any form of its URL or path).", show_default=False
    ),
]
BranchOption = Annotated[str | None, typer.Option("--branch", help="Only this branch.")]


@dataclass(frozen=True, slots=True)
class _Filter:
    """``--repo``/``--branch``: which branches' streams and functions to show."""

    repo: str | None = None
    branch: str | None = None

    @property
    def active(self) -> bool:
        return self.repo is not None or self.branch is not None

    def branch_matches(self, repository: str, branch: str) -> bool:
        if self.repo is not None and repository_id(self.repo) != repository_id(repository):
            return False
        return self.branch is None or self.branch == branch

    def owner_matches(self, owner: FunctionOwner | None) -> bool:
        return owner is not None and self.branch_matches(owner.repository, owner.branch)

    def stream_matches(self, stream: str, owners: dict[str, FunctionOwner]) -> bool:
        if stream.startswith(REPO_PREFIX):
            try:
                repository, branch = parse_repo_stream(stream)
            except ValueError:
                return False
            return self.branch_matches(repository, branch)
        if is_function_stream(stream):
            return self.owner_matches(owners.get(stream))
        return False


async def owners_of(store: Store) -> dict[str, FunctionOwner]:
    """Who owns each function, as the planner decides it; for a function no one owns now
    (deleted), the branch that owned it last. From the planner's rows the engine stores
    (``projections.planner``: every function's summary, the log after them folded in) and,
    for a function no one owns, the requests of its stream; without such rows, folded from
    the log's requests (``owners_folded``)."""
    from projections.planner import read_inputs

    try:
        inputs = await read_inputs(store, None)
    except StoreCorrupt:
        inputs = None  # rows that do not decode: derived data, the log says the same
    if inputs is None:
        return await owners_folded(store)
    summaries = inputs.deployed.summaries
    ownerless = [stream for stream, summary in summaries.items() if summary.owner is None]
    if len(ownerless) > OWNERLESS_READ_MAX:
        # A log of a glam that recorded no owners: one pass over the log, not one per stream.
        return await owners_folded(store)
    owners = {s: summary.owner.owner() for s, summary in summaries.items() if summary.owner}
    for stream in ownerless:
        for record in await store.read_stream(stream):
            if isinstance(record.event, DeploymentRequested) and record.event.owner is not None:
                owners[stream] = record.event.owner
    return owners


# Functions no one owns (deleted, mostly) whose streams `owners_of` reads one by one.
OWNERLESS_READ_MAX = 20


async def owners_folded(store: Store) -> dict[str, FunctionOwner]:
    """``owners_of``, folded from every request and plan in the log."""
    records = await store.read_selected(DEPLOYED_EVENT_TYPES | OWNER_EVENT_TYPES)
    last: dict[str, FunctionOwner] = {}
    for record in records:
        if isinstance(record.event, DeploymentRequested) and record.event.owner is not None:
            last[record.stream] = record.event.owner
    for stream, state in deployed_from_events(records).items():
        if state.owner is not None:
            last[stream] = state.owner
    return last


async def _latest_plans(store: Store) -> list[BranchPlan]:
    return latest_plans(await store.read_selected(PLAN_EVENT_TYPES))


# -- glam events ---------------------------------------------------------------------------


def check_types(types: Sequence[str]) -> frozenset[str]:
    """``--type`` values (repeated or comma-separated), each checked against the catalogue of
    event types: an unknown one is a usage error naming the likely one."""
    wanted = {t.strip() for value in types for t in value.split(",") if t.strip()}
    for name in sorted(wanted):
        if name not in EVENT_CLASSES:
            near = did_you_mean(name, EVENT_CLASSES)
            raise UsageError(
                f"unknown event type {name!r}" + (f" — did you mean {near!r}?" if near else ""),
                hint="docs/events.md lists every event type",
            )
    return frozenset(wanted)


async def resolve_streams(store: Store, stream: str) -> frozenset[str]:
    """The streams ``--stream`` names: a stream the log holds as written (``fn:…``,
    ``repo:…``, ``ops``), or a function's bare name (every region and account it is in)."""
    if stream.startswith((FUNCTION_PREFIX, REPO_PREFIX)) or stream == OPS_STREAM:
        if await store.stream_version(stream) == 0:
            raise GlamError(
                f"no stream {stream!r} in the log",
                hint="`glam status` lists the functions; a function's name works too",
            )
        return frozenset({stream})
    views = await views_now(store)
    named = frozenset(r.stream for r in views.functions.values() if r.name == stream)
    if not named:
        raise unknown_function(stream, (r.name for r in views.functions.values()))
    return named


async def start_position(store: Store, since: str | None, *, follow: bool) -> int:
    """Where ``glam events`` starts: ``--since`` (a position, a time, or how long ago), else
    the start of the log, or its end when following."""
    if since is None:
        return (await store.last_position()) + 1 if follow else 1
    moment = parse_moment(since, option="--since")
    if isinstance(moment, int):
        return max(moment, 1)
    return (await store.position_at(moment)) + 1


@app.command(
    epilog=examples(
        "glam events --type DeploymentFinished --type RollbackStarted",
        "glam events --stream orders --since 1h",
        "glam events --follow                  # new events only, until Ctrl-C",
        "glam events --follow --since 0 --json # the whole log, then new events",
    )
)
def events(
    db: DbOption = None,
    stream: Annotated[
        str | None,
        typer.Option(help="Only this function (a name or fn:ACCOUNT:REGION:NAME) or stream."),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only these event types (repeat it, or comma-separated)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start at this position, ISO-8601 time, or this long ago (15m, 2h, 1d). "
            "Default: the start, or the end with --follow.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many events.", min=1)] = None,
    as_json: JsonOption = False,
    follow: Annotated[bool, typer.Option(help="Keep printing new events.")] = False,
    repo: RepoOption = None,
    branch: BranchOption = None,
    show_secrets: ShowSecretsOption = False,
) -> None:
    """List events from the log, oldest first (one JSON object per line with --json).
    --repo/--branch: that branch's own events and those of the functions it owns."""
    only = _Filter(repo, branch)
    types = check_types(type_ or ())
    owners: dict[str, FunctionOwner] = {}
    streams: frozenset[str] | None = None

    def wanted(record: RecordedEvent) -> bool:
        if isinstance(record.event, DeploymentRequested) and record.event.owner is not None:
            owners[record.stream] = record.event.owner  # new owners while following
        return (
            (streams is None or record.stream in streams)
            and (not types or record.type in types)
            and (not only.active or only.stream_matches(record.stream, owners))
        )

    def show(record: RecordedEvent) -> None:
        if as_json:
            shown = event_json(record, show_secrets=show_secrets)
            print(json.dumps(shown, ensure_ascii=False), flush=True)
        else:
            print(
                f"{record.position}\t{record.recorded_at.isoformat(timespec='seconds')}\t"
                f"{record.stream}@{record.version}\t{record.type}\t{_summary(record)}",
                flush=True,
            )

    async def body(store: Store) -> None:
        nonlocal streams
        if stream is not None:
            streams = await resolve_streams(store, stream)
        if only.active:
            owners.update(await owners_of(store))
        position = await start_position(store, since, follow=follow)
        shown = 0
        if follow:
            async for record in store.follow(position):
                if wanted(record):
                    show(record)
                    shown += 1
                    if limit is not None and shown >= limit:
                        return
            return
        while limit is None or shown < limit:
            batch = await store.read_all(position, limit=1000)
            for record in batch:
                if wanted(record):
                    show(record)
                    shown += 1
                    if limit is not None and shown >= limit:
                        break
            if len(batch) < 1000:
                break
            position = batch[-1].position + 1

    with_store(db, body)


# -- glam status ---------------------------------------------------------------------------


@app.command(
    epilog=examples(
        "glam status                  # every function, fitted to the terminal",
        "glam status orders           # one function, with its event sources",
        "glam status --wide           # every column in full",
        "glam status --repo https://github.com/acme/lambdas.git --branch main --json",
    )
)
def status(
    function: Annotated[
        str | None, typer.Argument(help="A function name or stream fn:ACCOUNT:REGION:NAME.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column in full (account, region, owner).")
    ] = False,
    repo: RepoOption = None,
    branch: BranchOption = None,
) -> None:
    """Show every function (or one) as glam last saw it: versions, traffic, state, the last
    outcome and why, and the branch that owns it; then what each branch's latest plan
    refused or holds; and the head of the log's hash chain (on stderr, so the table stays
    clean for scripts). --repo/--branch: only that branch's functions and plan."""
    only = _Filter(repo, branch)

    async def body(
        store: Store,
    ) -> tuple[Views, dict[str, FunctionOwner], list[BranchPlan], _Drift, str]:
        # Every function, and the deployments their releases name, decoded while it is open.
        views = await views_now(store, lambda v: _releases(v, list(v.functions.values())))
        owners = await owners_of(store)
        drift = open_drift(await store.read_selected(DRIFT_EVENT_TYPES))
        return views, owners, await _latest_plans(store), drift, await chain_line(store)

    views, owners, plans, drift, head = with_store(db, body, check_beside=True)
    rows = sorted(views.functions.values(), key=lambda r: r.stream)
    if only.active:
        rows = [r for r in rows if only.owner_matches(owners.get(r.stream))]
        plans = [p for p in plans if only.stream_matches(p.stream, owners)]
    if function is not None:
        known = [r.name for r in rows]
        rows = [r for r in rows if function in (r.stream, r.name)]
        if not rows:
            raise unknown_function(function, known)
    releases = _releases(views, rows)
    if as_json:
        out = []
        for r in rows:
            owner = owners.get(r.stream)
            found = drift.get(r.stream, {})
            release = releases.get(r.last_deployment_id or "")
            out.append(
                json.loads(r.model_dump_json())
                | {"owner": None if owner is None else owner.model_dump(mode="json")}
                | {"drift": [d.model_dump(mode="json", exclude={"type"}) for d in found.values()]}
                | {"release": None if release is None else release_json(release)}
            )
        print_json(out)
        print(head, file=sys.stderr)
        return
    title = f"functions (log position {views.position})"
    if wide or not is_terminal():
        table(
            title,
            [
                "function",
                "account",
                "region",
                "alias",
                "stable",
                "new",
                "weight",
                "state",
                "commit",
                "last outcome",
                "drift",
                "owner",
                "last reason",
                "last operator command",
            ],
            _wide_rows(rows, owners, drift),
            wide=True,
        )
    else:
        _narrow_status(title, rows, owners, drift)
    _release_table(releases, wide)
    refused = [(p, rej) for p in plans for rej in p.rejected]
    if refused and function is None:
        table(
            "refused by the latest plan of each branch",
            ["branch", "commit", "prefix", Column("reason", wrap=True)],
            [(_branch_text(p.stream), p.sha[:12], r.prefix, r.reason) for p, r in refused],
            wide=wide,
        )
    held = [(p, h) for p in plans if p.held is not None for h in _removals(p.held)]
    if held and function is None:
        shas = sorted({p.sha[:12] for p, _ in held})
        table(
            "removals held for an operator: glam allow-deletes "
            + " / ".join(shas)
            + ' --reason "…"',
            ["branch", "commit", Column("removal", wrap=True), Column("reason", wrap=True)],
            [(_branch_text(p.stream), p.sha[:12], what, why) for p, (what, why) in held],
            wide=wide,
        )
    if function is not None and any(drift.get(r.stream) for r in rows):
        from engine.drift.compare import show

        table(
            "drift found by the engine (glam drift reads AWS now)",
            ["function", "field", "glam deployed", "AWS has", "since"],
            [
                (r.name, d.path, show(d.desired), show(d.live), d.detected_at.isoformat())
                for r in rows
                for d in drift.get(r.stream, {}).values()
            ],
        )
    if function is not None:
        # One function asked for: also show what invokes it. Every source is on the alias.
        table(
            "event sources",
            ["function", "alias", "kind", Column("source", wrap=True)],
            [(r.name, r.alias, s.kind, s.source_id) for r in rows for s in r.event_sources],
            wide=wide,
        )
    print(head, file=sys.stderr)


_Drift = dict[str, dict[str, DriftDetected]]


def _drift_text(found: dict[str, DriftDetected]) -> str:
    """The drift column: how many fields differ, the first of them."""
    if not found:
        return ""
    first = sorted(found)[0]
    more = f" +{len(found) - 1}" if len(found) > 1 else ""
    return f"DRIFT {first}{more}"


def _wide_rows(
    rows: Sequence[FunctionRow], owners: dict[str, FunctionOwner], drift: _Drift
) -> list[tuple[object, ...]]:
    return [
        (
            r.name,
            r.account,
            r.region,
            r.alias,
            r.stable_version,
            r.new_version,
            f"{r.weight:.0%}" if r.new_version else "",
            r.state,
            (r.last_commit or "")[:12],
            r.last_outcome,
            _drift_text(drift.get(r.stream, {})),
            _owner_text(owners.get(r.stream)),
            r.last_reason or r.last_error,
            r.last_operator_command,
        )
        for r in rows
    ]


def _narrow_status(
    title: str, rows: Sequence[FunctionRow], owners: dict[str, FunctionOwner], drift: _Drift
) -> None:
    """The functions at a terminal's width: where a function is only when they are in more
    than one region or account, the owner only when there is more than one, versions and
    weight in one cell, and the last outcome with its reason wrapped in the last column."""
    places = {(r.account, r.region) for r in rows}
    accounts = {r.account for r in rows}
    owner_texts = {_owner_text(owners.get(r.stream)) for r in rows}

    def name(r: FunctionRow) -> str:
        if len(places) <= 1:
            return r.name
        if len(accounts) <= 1:
            return f"{r.name} ({r.region})"
        return f"{r.name} ({r.account}/{r.region})"

    def versions(r: FunctionRow) -> str:
        if r.new_version and r.stable_version:
            return f"{r.stable_version}→{r.new_version} {r.weight:.0%}"
        if r.new_version:
            return f"→{r.new_version}"
        return r.stable_version or ""

    def last(r: FunctionRow) -> str:
        why = r.last_reason or r.last_error
        text = r.last_outcome or ""
        if why:
            text = f"{text}: {why}" if text else why
        if r.last_operator_command:
            text = f"{text} [{r.last_operator_command}]" if text else r.last_operator_command
        found = _drift_text(drift.get(r.stream, {}))
        return f"{text}; {found}" if text and found else text or found

    columns: list[str | Column] = [
        Column("function", min=8),
        "alias",
        "version",
        "state",
        "commit",
    ]
    show_owner = len(owner_texts - {""}) > 1
    if show_owner:
        columns.append(Column("owner", min=6))
    columns.append(Column("last outcome", wrap=True, min=16))
    body = []
    for r in rows:
        cells: list[object] = [
            name(r),
            r.alias,
            versions(r),
            r.state,
            (r.last_commit or "")[:7],
        ]
        if show_owner:
            cells.append(_owner_text(owners.get(r.stream)))
        cells.append(last(r))
        body.append(cells)
    table(title, columns, body)


def _releases(views: Views, rows: Sequence[FunctionRow]) -> dict[str, ReleaseView]:
    """The releases of the functions' last deployments, by member deployment id."""

    def lookup(deployment_id: str) -> DeploymentRow | None:
        row = views.row("deployments", deployment_id)
        return row if isinstance(row, DeploymentRow) else None

    last = [d for r in rows if r.last_deployment_id and (d := lookup(r.last_deployment_id))]
    return {
        member.deployment_id: view
        for view in release_views(last, lookup)
        for member in view.release.members
    }


def _release_table(releases: dict[str, ReleaseView], wide: bool) -> None:
    """The releases the functions shown last deployed in, newest first."""
    views = sorted(
        {v.release.id: v for v in releases.values()}.values(),
        key=lambda v: v.started_at or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    if not views:
        return
    table(
        "releases (functions deployed as one)",
        ["release", "commit", "state", Column("members", wrap=True), Column("cause", wrap=True)],
        [(v.release.name, (v.commit or "")[:7], v.state, member_text(v), v.cause) for v in views],
        wide=wide,
    )


def _owner_text(owner: FunctionOwner | None) -> str:
    if owner is None:
        return ""
    return f"{owner.repository.rstrip('/').rsplit('/', 1)[-1]}#{owner.branch}"


def _branch_text(stream: str) -> str:
    try:
        repository, branch = parse_repo_stream(stream)
    except ValueError:
        return stream
    return f"{repository}#{branch}"


def _removals(held: DeletesHeld) -> list[tuple[str, str]]:
    if not held.removals:
        return [(prefix, "delete held") for prefix in held.prefixes]
    return [
        (f"alias {r.alias} of {r.function}" if r.alias else r.function, r.reason)
        for r in held.removals
    ]
