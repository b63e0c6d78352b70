"""Read-only queries on the event log: ``glam events``, ``glam status``, ``glam replay``.

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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, current_views, db_path
from engine.cli.db import chain_line, chain_report, print_chain
from engine.deployed import DEPLOYED_EVENT_TYPES, OWNER_EVENT_TYPES, deployed_from_events
from engine.drift.recorded import DRIFT_EVENT_TYPES, open_drift
from engine.errors import GlamError, UsageError
from engine.events import RecordedEvent
from engine.events.function import (
    DeploymentRequested,
    DriftDetected,
    FunctionOwner,
    OperatorRequested,
)
from engine.events.repo import CommitPlanned, DefinitionRejected, DeletesHeld
from engine.logs import mask_environment
from engine.redact import repository_id
from engine.store.sqlite import SqliteEventStore
from engine.streams import REPO_PREFIX, is_function_stream, parse_repo_stream
from projections.history import History
from projections.runner import PROJECTION
from projections.views import SnapshotUnreadable, Views, differences

T = TypeVar("T")


def _run(db: Path | None, body: Callable[[SqliteEventStore], Awaitable[T]]) -> T:
    async def go() -> T:
        async with SqliteEventStore(db_path(db), readonly=True) as store:
            return await body(store)

    return anyio.run(go)


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A rich table on a terminal; tab-separated lines (header first) when piped."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in cells:
            table.add_row(*row)
        Console().print(table)
    else:
        print("\t".join(columns))
        for row in cells:
            print("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


ShowSecretsOption = Annotated[
    bool,
    typer.Option("--show-secrets", help="Show function environment values (**** otherwise)."),
]


def _event_json(record: RecordedEvent, *, show_secrets: bool = False) -> dict[str, Any]:
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


async def _owners(store: SqliteEventStore) -> dict[str, FunctionOwner]:
    """Who owns each function, as the planner decides it; for a function no one owns now
    (deleted), the branch that owned it last."""
    records = await store.read_selected(DEPLOYED_EVENT_TYPES | OWNER_EVENT_TYPES)
    last: dict[str, FunctionOwner] = {}
    for record in records:
        if isinstance(record.event, DeploymentRequested) and record.event.owner is not None:
            last[record.stream] = record.event.owner
    for stream, state in deployed_from_events(records).items():
        if state.owner is not None:
            last[stream] = state.owner
    return last


@dataclass
class _BranchPlan:
    """A branch's latest plan, as ``glam status`` shows it: what it refused and holds."""

    stream: str
    sha: str
    rejected: list[DefinitionRejected]
    held: DeletesHeld | None = None


async def _latest_plans(store: SqliteEventStore) -> list[_BranchPlan]:
    types = {"CommitPlanned", "DefinitionRejected", "DeletesHeld", "OperatorRequested"}
    plans: dict[str, _BranchPlan] = {}
    for record in await store.read_selected(types):
        if not record.stream.startswith(REPO_PREFIX):
            continue
        event = record.event
        current = plans.get(record.stream)
        match event:
            case CommitPlanned():
                plans[record.stream] = _BranchPlan(record.stream, event.sha, [])
            case DefinitionRejected() if current is not None and event.sha == current.sha:
                current.rejected.append(event)
            case DeletesHeld() if current is not None and event.sha == current.sha:
                current.held = event
            case OperatorRequested(command="allow_deletes", outcome="applied") if (
                current is not None and event.target == current.sha
            ):
                current.held = None
            case _:
                pass
    return [plans[k] for k in sorted(plans)]


# -- glam events ---------------------------------------------------------------------------


@app.command()
def events(
    db: DbOption = None,
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    since: Annotated[int, typer.Option(help="Start at this position.", min=1)] = 1,
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
    owners: dict[str, FunctionOwner] = {}

    def wanted(record: RecordedEvent) -> bool:
        if isinstance(record.event, DeploymentRequested) and record.event.owner is not None:
            owners[record.stream] = record.event.owner  # new owners while following
        return (
            (stream is None or record.stream == stream)
            and (type_ is None or record.type == type_)
            and (not only.active or only.stream_matches(record.stream, owners))
        )

    def show(record: RecordedEvent) -> None:
        if as_json:
            shown = _event_json(record, show_secrets=show_secrets)
            print(json.dumps(shown, ensure_ascii=False), flush=True)
        else:
            print(
                f"{record.position}\t{record.recorded_at.isoformat(timespec='seconds')}\t"
                f"{record.stream}@{record.version}\t{record.type}\t{_summary(record)}",
                flush=True,
            )

    async def body(store: SqliteEventStore) -> None:
        if only.active:
            owners.update(await _owners(store))
        shown = 0
        if follow:
            async for record in store.follow(since):
                if wanted(record):
                    show(record)
                    shown += 1
                    if limit is not None and shown >= limit:
                        return
            return
        position = since
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

    _run(db, body)


# -- glam status ---------------------------------------------------------------------------


@app.command()
def status(
    function: Annotated[
        str | None, typer.Argument(help="A function name or stream fn:ACCOUNT:REGION:NAME.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    repo: RepoOption = None,
    branch: BranchOption = None,
) -> None:
    """Show every function (or one) as glam last saw it: versions, traffic, state, and the
    branch that owns it; then what each branch's latest plan refused or holds; and the head of
    the log's hash chain (on stderr, so the table stays clean for scripts).
    --repo/--branch: only that branch's functions and plan."""
    only = _Filter(repo, branch)

    async def body(
        store: SqliteEventStore,
    ) -> tuple[Views, dict[str, FunctionOwner], list[_BranchPlan], _Drift, str]:
        views, owners = await current_views(store), await _owners(store)
        drift = open_drift(await store.read_selected(DRIFT_EVENT_TYPES))
        return views, owners, await _latest_plans(store), drift, await chain_line(store)

    views, owners, plans, drift, head = _run(db, body)
    rows = sorted(views.functions.values(), key=lambda r: r.stream)
    if only.active:
        rows = [r for r in rows if only.owner_matches(owners.get(r.stream))]
        plans = [p for p in plans if only.stream_matches(p.stream, owners)]
    if function is not None:
        rows = [r for r in rows if function in (r.stream, r.name)]
        if not rows:
            raise GlamError(
                f"no function {function!r} in the log",
                hint="run `glam status` to list the functions glam knows",
            )
    if as_json:
        out = []
        for r in rows:
            owner = owners.get(r.stream)
            found = drift.get(r.stream, {})
            out.append(
                json.loads(r.model_dump_json())
                | {"owner": None if owner is None else owner.model_dump(mode="json")}
                | {"drift": [d.model_dump(mode="json", exclude={"type"}) for d in found.values()]}
            )
        _print_json(out)
        print(head, file=sys.stderr)
        return
    _table(
        f"functions (log position {views.position})",
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
        ],
        [
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
            )
            for r in rows
        ],
    )
    refused = [(p, rej) for p in plans for rej in p.rejected]
    if refused and function is None:
        _table(
            "refused by the latest plan of each branch",
            ["branch", "commit", "prefix", "reason"],
            [(_branch_text(p.stream), p.sha[:12], r.prefix, r.reason) for p, r in refused],
        )
    held = [(p, h) for p in plans if p.held is not None for h in _removals(p.held)]
    if held and function is None:
        _table(
            "removals held for an operator (glam allow-deletes COMMIT)",
            ["branch", "commit", "removal", "reason"],
            [(_branch_text(p.stream), p.sha[:12], what, why) for p, (what, why) in held],
        )
    if function is not None and any(drift.get(r.stream) for r in rows):
        from engine.drift.compare import show

        _table(
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
        _table(
            "event sources",
            ["function", "alias", "kind", "source"],
            [(r.name, r.alias, s.kind, s.source_id) for r in rows for s in r.event_sources],
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


# -- glam replay ---------------------------------------------------------------------------


def _parse_at(at: str) -> int | datetime:
    if at.isdigit():
        return int(at)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise UsageError(
            f"--at {at!r} is neither a position nor an ISO-8601 time",
            hint="use e.g. --at 120 or --at 2025-03-01T10:00:00Z",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # naive means UTC


async def _fold_until(store: SqliteEventStore, end: int) -> Views:
    views = Views()
    while views.position < end:
        batch = await store.read_all(views.position + 1, limit=min(5000, end - views.position))
        if not batch:
            break
        for record in batch:
            views.apply(record)
    return views


@app.command()
def replay(
    db: DbOption = None,
    at: Annotated[
        str | None, typer.Option(help="Stop at this log position or ISO-8601 time.")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(help="Check the hash chain and that the stored views equal the replay."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fold the log into fresh views, up to --at, and print them: the state as it was then.
    --at folds only from the nearest snapshot the engine saved before it. With --verify,
    everything is folded from position 0, and it exits 1 naming the first position that
    does not check out."""
    target = _parse_at(at) if at is not None else None

    async def body(store: SqliteEventStore) -> tuple[Any, dict[str, Any]]:
        last = await store.last_position()
        if isinstance(target, datetime):
            end = await store.position_at(target)
        else:
            end = last if target is None else min(target, last)
        report: dict[str, Any] = {}
        if verify:
            report["chain"] = await chain_report(store)
            if not report["chain"]["ok"]:
                return _shown(Views(), as_json), report  # an altered log cannot be trusted
            checkpoint, stored = await store.load_views(PROJECTION)
            replayed = await _fold_until(store, checkpoint)
            diffs = differences(stored, replayed.to_rows())
            first = None
            if diffs:
                first = min(_row_position(s, r) for _, s, r in diffs)
            report["views"] = {
                "ok": not diffs,
                "checkpoint": checkpoint,
                "differing_rows": [f"{v}/{k}" for (v, k), _, _ in diffs],
                "first_bad_position": first,
            }
        if target is None or verify:
            return _shown(await _fold_until(store, end), as_json), report
        travel = History(store)
        try:
            return _shown(await travel.at(end), as_json), report
        except SnapshotUnreadable as exc:
            print(f"warning: {exc.one_line()}; folding from position 0", file=sys.stderr)
            return _shown(await travel.at(end, snapshots=False), as_json), report

    shown, report = _run(db, body)
    ok = all(part["ok"] for part in report.values())
    if as_json:
        _print_json({**shown, **({"verify": report} if verify else {})})
    else:
        if "views" in report or not verify:
            _print_views(shown)
        _print_report(report)
    if not ok:
        raise typer.Exit(1)


RECENT = 20  # deployments and commits listed in text; --json has them all


def _shown(views: Views, as_json: bool) -> Any:
    """What replay prints, read from the views while the log is open (rows from a snapshot
    are decoded here, so one that does not decode is noticed before anything is printed)."""
    if as_json:
        return views.as_json()
    return {
        "position": views.position,
        "functions": sorted(views.functions.values(), key=lambda r: r.stream),
        "deployments": (views.recent("deployments", RECENT), views.count("deployments")),
        "commits": (views.recent("commits", RECENT), views.count("commits")),
    }


def _row_position(stored: str | None, replayed: str | None) -> int:
    positions = [json.loads(text)["position"] for text in (stored, replayed) if text is not None]
    return min(positions) if positions else 0


def _print_views(shown: dict[str, Any]) -> None:
    _table(
        f"functions at position {shown['position']}",
        ["function", "alias", "stable", "new", "weight", "state", "commit"],
        [
            (
                r.stream,
                r.alias,
                r.stable_version,
                r.new_version,
                f"{r.weight:.0%}",
                r.state,
                (r.last_commit or "")[:12],
            )
            for r in shown["functions"]
        ],
    )
    deployments, count = shown["deployments"]
    _table(
        _title("deployments", len(deployments), count),
        ["deployment", "function", "action", "outcome", "steps", "reason"],
        [
            (r.deployment_id, r.function, r.action, r.outcome or r.state, len(r.steps), r.reason)
            for r in deployments
        ],
    )
    commits, count = shown["commits"]
    _table(
        _title("commits", len(commits), count),
        ["commit", "summary", "planned", "rejected", "held deletes"],
        [
            (r.sha[:12], r.summary, len(r.planned), len(r.rejections), len(r.held_deletes))
            for r in commits
        ],
    )


def _title(view: str, shown: int, count: int) -> str:
    if shown == count:
        return view
    return f"{view} (the last {shown} of {count:,}; --json lists them all)"


def _print_report(report: dict[str, Any]) -> None:
    chain = report.get("chain")
    if chain is not None:
        print_chain(chain)
    views = report.get("views")
    if views is not None:
        if views["ok"]:
            print(f"stored views: equal to the replay (checkpoint {views['checkpoint']})")
        else:
            print(
                f"stored views: DIFFER from the replay from position "
                f"{views['first_bad_position']} ({', '.join(views['differing_rows'][:5])})",
                file=sys.stderr,
            )
