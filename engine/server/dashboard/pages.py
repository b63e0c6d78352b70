"""The dashboard's pages: the overview, a function, a deployment, one event of the log. Each
takes ``?at=POSITION`` (or a time) and then shows the log as it was after that event.

Rows come from the views (``Board.views``: the live fold, or the fold at the position); a
function's chart and a deployment's timeline read that function's stream (one indexed read),
cut at the position shown. A page reads the rows it shows by key (``Views.row``), never a
whole view it does not list: a view at a past position decodes only those rows of its
snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from markupsafe import Markup

from engine.drift.compare import show
from engine.events import RecordedEvent
from engine.events.function import StepFailed, StepStarted, StepSucceeded
from engine.events.repo import HeldRemoval
from engine.server.dashboard.board import Board
from engine.server.dashboard.chart import weight_chart
from engine.server.dashboard.html import at_row, overview_row, seconds
from engine.server.dashboard.render import Moment, moment_of, render
from engine.server.present import event_json, mask_environment
from projections.base import Row
from projections.commits import CommitRow
from projections.deployments import DeploymentRow
from projections.functions import FunctionRow
from projections.views import Views

R = TypeVar("R", bound=Row)

IN_FLIGHT = frozenset({"deploying", "shifting", "baking", "rolling_back", "deleting"})
STATES = (
    "pending",
    "deploying",
    "shifting",
    "baking",
    "rolling_back",
    "stable",
    "rolled_back",
    "failed",
    "superseded",
    "deleting",
    "deleted",
)
HISTORY = 50  # deployments listed on a function's page


@dataclass(frozen=True, slots=True)
class Line:
    """A row of the overview: the function, where it comes from, its bake time left (as
    shown) and drift, and its HTML (``html.overview_row``)."""

    row: FunctionRow
    repository: str
    bake_left: str
    drift: list[str]
    html: Markup = field(default_factory=Markup)


def _row(views: Views, view: str, key: str, kind: type[R]) -> R | None:
    found = views.row(view, key)
    return found if isinstance(found, kind) else None


def _first_position(row: DeploymentRow) -> int:
    return row.steps[0].position if row.steps else row.position


async def _shown(board: Board, request: web.Request) -> tuple[Views, Moment]:
    at = await board.moment(request)
    views = await board.views(at)
    return views, await moment_of(board, at, views.position)


def _now(board: Board, moment: Moment) -> datetime | None:
    if moment.historical:
        return moment.recorded_at
    return board.clock.now()


# -- the overview --------------------------------------------------------------------------


async def overview(request: web.Request, board: Board) -> web.Response:
    views, moment = await _shown(board, request)
    q = request.query
    drift = board.index.open_drift(moment.position)
    now = _now(board, moment)
    functions = sorted(views.functions.values(), key=lambda r: r.stream)
    repos = board.state.function_repos
    states = {r.state for r in functions}
    choices = {
        "repository": sorted({repos[r.stream] for r in functions if r.stream in repos}),
        "account": sorted({r.account for r in functions}),
        "region": sorted({r.region for r in functions}),
        "state": [s for s in STATES if s in states],
    }
    wanted = {name: q.get(name, "") for name in choices}
    lines: list[Line] = []
    for row in functions:
        repository = repos.get(row.stream, "")
        if (
            (wanted["repository"] and repository != wanted["repository"])
            or (wanted["account"] and row.account != wanted["account"])
            or (wanted["region"] and row.region != wanted["region"])
            or (wanted["state"] and row.state != wanted["state"])
        ):
            continue
        bake_left = None
        if row.state == "baking" and now is not None:
            end = board.index.bake_end(row.stream, moment.position)
            if end is not None:
                bake_left = max(0.0, (end - now).total_seconds())
        shown = sorted(drift.get(row.stream, {}))
        line = Line(row, repository, seconds(bake_left), shown)
        # A row's HTML changes only with the row (its position), its bake or drift.
        key = (row.stream, row.position, line.bake_left, tuple(shown))
        made = board.rendered(key, partial(overview_row, line))
        lines.append(replace(line, html=at_row(made, moment)))
    return await render(
        request,
        board,
        "overview",
        moment,
        title="glam",
        lines=lines,
        total=len(functions),
        choices=choices,
        wanted=wanted,
        branches=_branches(board, views, moment),
        held=_held(board, moment),
        in_flight=sum(1 for r in functions if r.state in IN_FLIGHT),
    )


def _branches(board: Board, views: Views, moment: Moment) -> list[dict[str, Any]]:
    out = []
    for branch in board.branches():
        head = board.index.head(branch.stream, moment.position) if branch.stream else None
        planned = None
        if branch.stream is not None and not moment.historical:
            planned = board.state.last_planned(branch.stream)
        if board.engine is None:
            sync = "read from the log (no engine here)"
        elif branch.unavailable:
            sync = f"unavailable: {branch.unavailable}"
        elif branch.fetched:
            sync = "in sync" if head is None or planned == head.sha else "planning"
        else:
            sync = "not fetched yet"
        commit = _row(views, "commits", head.sha, CommitRow) if head is not None else None
        out.append(
            {
                "branch": branch,
                "head": head,
                "planned": planned,
                "sync": sync,
                "problem": bool(branch.unavailable),
                "rejected": len(commit.rejections) if commit is not None else 0,
            }
        )
    return out


def _held(board: Board, moment: Moment) -> list[tuple[str, str, HeldRemoval | str]]:
    out: list[tuple[str, str, HeldRemoval | str]] = []
    for plan in board.index.latest_plans(moment.position):
        if plan.held is None:
            continue
        removals: list[HeldRemoval | str] = list(plan.held.removals)
        if not removals:
            removals = [f"{p} (mass delete: {plan.held.share:.0%})" for p in plan.held.prefixes]
        out.extend((plan.stream, plan.sha, removal) for removal in removals)
    return out


# -- a function ----------------------------------------------------------------------------


async def function(request: web.Request, board: Board, stream: str) -> web.Response:
    views, moment = await _shown(board, request)
    row = _row(views, "functions", stream, FunctionRow)
    if row is None:
        return await not_found(request, board, moment, f"no function {stream} at this point")
    records = _until(await board.store.read_stream(stream), moment.position)
    # The function's deployments are those its own events name.
    ids = dict.fromkeys(getattr(r.event, "deployment_id", None) for r in records)
    found = (_row(views, "deployments", i, DeploymentRow) for i in ids if i)
    deployments = sorted((d for d in found if d is not None), key=_first_position, reverse=True)
    shas = [d.commit for d in deployments if d.commit] + [row.last_commit or ""]
    commits = []
    for sha in dict.fromkeys(s for s in shas if s):
        commits.append((sha, _row(views, "commits", sha, CommitRow)))
    drift = board.index.open_drift(moment.position).get(stream, {})
    active = deployments[0] if deployments and deployments[0].state != "finished" else None
    return await render(
        request,
        board,
        "function",
        moment,
        title=f"{row.name} · glam",
        row=row,
        chart=weight_chart(records),
        deployments=deployments[:HISTORY],
        more=max(0, len(deployments) - HISTORY),
        commits=commits[:HISTORY],
        drift=[(d.path, show(d.desired), show(d.live), d.detected_at) for d in drift.values()],
        active=active,
        in_flight=row.state in IN_FLIGHT,
        **_flash(request),
    )


def _until(records: list[RecordedEvent], position: int) -> list[RecordedEvent]:
    return [r for r in records if r.position <= position]


def _flash(request: web.Request) -> dict[str, Any]:
    done, event = request.query.get("done"), request.query.get("event", "")
    if done and event.isdigit():
        return {"notice": f"{done.replace('_', ' ')} recorded as event {event}"}
    return {}


# -- a deployment --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """An AWS call of a deployment: its step, what was sent and answered, how long it took."""

    record: RecordedEvent
    step: str
    outcome: str
    detail: dict[str, Any]
    seconds: float | None


async def deployment(request: web.Request, board: Board, deployment_id: str) -> web.Response:
    views, moment = await _shown(board, request)
    row = _row(views, "deployments", deployment_id, DeploymentRow)
    if row is None:
        return await not_found(request, board, moment, f"no deployment {deployment_id} here")
    records = [
        r
        for r in _until(await board.store.read_stream(row.function), moment.position)
        if getattr(r.event, "deployment_id", None) == deployment_id
    ]
    started = row.requested_at or (row.steps[0].at if row.steps else None)
    return await render(
        request,
        board,
        "deployment",
        moment,
        title=f"deployment {deployment_id} · glam",
        row=row,
        started=started,
        calls=_calls(records),
        function=_row(views, "functions", row.function, FunctionRow),
    )


def _calls(records: list[RecordedEvent]) -> list[Call]:
    open_steps: dict[str, RecordedEvent] = {}
    calls: list[Call] = []
    for record in records:
        event = record.event
        match event:
            case StepStarted():
                open_steps[str(event.step)] = record
                detail = mask_environment(event.request)
                calls.append(Call(record, str(event.step), "started", detail, None))
            case StepSucceeded() | StepFailed():
                began = open_steps.pop(str(event.step), None)
                seconds = None
                if began is not None:
                    seconds = (record.recorded_at - began.recorded_at).total_seconds()
                if isinstance(event, StepSucceeded):
                    outcome, detail = "succeeded", mask_environment(event.result)
                else:
                    outcome = "failed"
                    detail = {"error": event.error_code, "message": event.message}
                calls.append(Call(record, str(event.step), outcome, detail, seconds))
            case _:
                pass
    return calls


# -- one event -----------------------------------------------------------------------------


async def event(request: web.Request, board: Board, position: int) -> web.Response:
    found = await board.store.read_all(position, limit=1) if position > 0 else []
    moment = await moment_of(board, None, board.position)
    if not found or found[0].position != position:
        return await not_found(request, board, moment, f"no event at position {position}")
    record = found[0]
    return await render(
        request,
        board,
        "event",
        moment,
        title=f"event {position} · glam",
        record=record,
        shown=event_json(record),
        deployment_id=getattr(record.event, "deployment_id", None),
        last=board.position,
    )


async def not_found(
    request: web.Request, board: Board, moment: Moment | None, message: str
) -> web.Response:
    return await render(
        request, board, "error", moment, status=404, title="not found · glam", message=message
    )
