"""glam's own API under ``/api/v1/``: what the engine knows (functions, deployments, releases,
commits, watched branches) and what an operator may ask of it (sync now, promote, abort, retry,
allow-deletes). docs/api.md describes every endpoint.

Reads answer from the views the server folds in memory (``LogState``): the same rows
``glam status`` shows, as far as the log goes. Lists are newest first and paged with an opaque
``cursor`` (``next_cursor`` in the answer; absent on the last page).

Writes are operator commands recorded exactly as the CLI records them: checked and appended
by ``engine.commands`` (one ``OperatorCommandIssued`` with actor and reason on the ``ops``
stream), then handed over by the engine's operators loop, which the server wakes at once. An
``Idempotency-Key`` header makes a retried request record nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from engine.commands import COMMANDS, Command, UnknownTarget, issue_command, parse_duration
from engine.errors import UsageError
from engine.events.operator import OperatorCommandIssued
from engine.redact import redact_url
from engine.releases import ReleaseView, release_json, release_views
from engine.server.app import Context, context, json_error
from engine.server.auth import access
from engine.server.gitmoxi import commit_fields
from engine.server.params import (
    branch_of,
    cursor_of,
    find_stream,
    function_matches,
    json_body,
    limit_of,
    page,
    same_repository,
)
from engine.server.present import commit_json, deployment_json, function_json
from projections.commits import CommitRow
from projections.deployments import DeploymentRow
from projections.history import views_at
from projections.views import Views

API = "/api/v1"


# -- parameters ----------------------------------------------------------------------------


async def views_of(request: web.Request) -> Views:
    """The views the request asks about: as they are now, or with ``at=POSITION`` as they were
    after that event (time travel: from the nearest snapshot, ``projections.history``)."""
    ctx = context(request)
    text = request.query.get("at")
    if text is None or text == "":
        return ctx.state.views
    if not text.isdigit():
        raise UsageError("at must be a log position (a number)", hint="e.g. at=120")
    return await views_at(ctx.engine.store, int(text))


# -- functions -----------------------------------------------------------------------------


@access("read")
async def list_functions(request: web.Request) -> web.Response:
    views = await views_of(request)
    q = request.query
    rows = [
        row
        for row in views.functions.values()
        if (not q.get("account") or row.account == q["account"])
        and (not q.get("region") or row.region == q["region"])
        and (not q.get("name") or row.name == q["name"])
        and (not q.get("state") or row.state == q["state"])
    ]
    return web.json_response(
        {
            "functions": [function_json(r) for r in sorted(rows, key=lambda r: r.stream)],
            "position": views.position,
        }
    )


@access("read")
async def get_function(request: web.Request) -> web.Response:
    ctx = context(request)
    views = await views_of(request)
    wanted = request.match_info["function"]
    rows = [r for s, r in views.functions.items() if function_matches(s, wanted)]
    if not rows:
        return json_error(404, f"unknown function {wanted!r}", "GET /api/v1/functions lists them")
    if len(rows) > 1:
        streams = ", ".join(sorted(r.stream for r in rows))
        return json_error(409, f"function name {wanted!r} is ambiguous: {streams}")
    row = rows[0]
    recent = [
        deployment_json(d, repository=_repo_of(ctx, d), timeline=False)
        for d in sorted(
            (d for d in views.deployments.values() if d.function == row.stream),
            key=_first_position,
            reverse=True,
        )[:10]
    ]
    return web.json_response({**function_json(row), "deployments": recent})


# -- deployments ---------------------------------------------------------------------------


def _first_position(row: DeploymentRow) -> int:
    return row.steps[0].position if row.steps else row.position


def _repo_of(ctx: Context, row: DeploymentRow) -> str | None:
    return ctx.state.repository_of(row.commit, row.function)


def deployment_filter(ctx: Context, query: dict[str, str]) -> Callable[[DeploymentRow], bool]:
    """The deployments matching the filters of ``query``: function (name or stream),
    repository (URL), commit (a prefix of 7 or more), account, region, outcome, state."""

    def keep(row: DeploymentRow) -> bool:
        parts = row.function.split(":", 3)
        account, region = (parts[1], parts[2]) if len(parts) == 4 else ("", "")
        if (f := query.get("function")) and not function_matches(row.function, f):
            return False
        if (c := query.get("commit")) and not (row.commit or "").startswith(c):
            return False
        if (a := query.get("account")) and account != a:
            return False
        if (r := query.get("region")) and region != r:
            return False
        if (o := query.get("outcome")) and (row.outcome or "") != o:
            return False
        if (s := query.get("state")) and row.state != s:
            return False
        return not (
            (repo := query.get("repository")) and not same_repository(_repo_of(ctx, row), repo)
        )

    return keep


@access("read")
async def list_deployments(request: web.Request) -> web.Response:
    ctx = context(request)
    query = dict(request.query)
    if (c := query.get("commit")) and len(c) < 7:
        raise UsageError("commit must be at least 7 hex digits", hint="or the full sha")
    keep = deployment_filter(ctx, query)
    views = await views_of(request)
    rows, more = page(
        ((_first_position(d), d) for d in views.deployments.values() if keep(d)),
        cursor=cursor_of(request),
        limit=limit_of(request),
    )
    body: dict[str, Any] = {
        "deployments": [
            deployment_json(d, repository=_repo_of(ctx, d), timeline=False) for d in rows
        ],
        "position": views.position,
    }
    if more is not None:
        body["next_cursor"] = str(more)
    return web.json_response(body)


@access("read")
async def get_deployment(request: web.Request) -> web.Response:
    ctx = context(request)
    deployment_id = request.match_info["deployment_id"]
    row = (await views_of(request)).deployments.get(deployment_id)
    if row is None:
        return json_error(404, f"unknown deployment {deployment_id}")
    return web.json_response(deployment_json(row, repository=_repo_of(ctx, row), timeline=True))


# -- releases (deployments of one commit moved as one) -------------------------------------


def _releases(views: Views) -> list[tuple[int, ReleaseView]]:
    """Every release in the views, keyed by the position its first member was requested at."""
    deployments = views.deployments
    members = [d for d in deployments.values() if d.release is not None]
    found = release_views(members, deployments.get)
    return [(min(_first_position(r) for r in v.rows), v) for v in found if v.rows]


@access("read")
async def list_releases(request: web.Request) -> web.Response:
    """Releases newest first, each with its members' states; ``name`` filters, ``limit`` and
    ``cursor`` page."""
    views = await views_of(request)
    name = request.query.get("name")
    found = [(at, v) for at, v in _releases(views) if name in (None, v.release.name)]
    chosen, more = page(found, cursor=cursor_of(request), limit=limit_of(request))
    body: dict[str, Any] = {
        "releases": [release_json(v) for v in chosen],
        "position": views.position,
    }
    if more is not None:
        body["next_cursor"] = str(more)
    return web.json_response(body)


@access("read")
async def get_release(request: web.Request) -> web.Response:
    release_id = request.match_info["release_id"]
    views = await views_of(request)
    for _, view in _releases(views):
        if view.release.id == release_id:
            return web.json_response(release_json(view))
    return json_error(404, f"unknown release {release_id}")


# -- commits (glam's fields and Gitmoxi's, in one answer) ----------------------------------


def commit_answer(ctx: Context, row: CommitRow) -> dict[str, Any]:
    stream = ctx.state.commit_repos.get(row.sha)
    deployments = [
        d for i in row.deployments if (d := ctx.state.views.deployments.get(i)) is not None
    ]
    return {
        **commit_json(row, repository=stream),
        **commit_fields(ctx, row, stream, deployments),
    }


@access("read")
async def list_commits(request: web.Request) -> web.Response:
    """Commits newest first; ``repository`` (or Gitmoxi's ``repo_url``) and ``branch``
    filter, ``limit`` (or ``n``) and ``cursor`` page."""
    ctx = context(request)
    q = request.query
    repo = q.get("repository") or q.get("repo_url")
    branch = q.get("branch")
    items = []
    for sha, row in ctx.state.views.commits.items():
        stream = ctx.state.commit_repos.get(sha)
        if repo and not same_repository(stream, repo):
            continue
        if branch and branch_of(stream) != branch:
            continue
        items.append((ctx.state.commit_seen.get(sha, row.position), row))
    rows, more = page(items, cursor=cursor_of(request), limit=limit_of(request, "limit", "n"))
    body: dict[str, Any] = {"commits": [commit_answer(ctx, r) for r in rows]}
    if more is not None:
        body["next_cursor"] = str(more)
    return web.json_response(body)


@access("read")
async def get_commit(request: web.Request) -> web.Response:
    """One commit by sha (a unique prefix of 7 or more), as ``{"commits": [...]}``."""
    ctx = context(request)
    wanted = request.match_info["sha"].lower()
    if len(wanted) < 7:
        raise UsageError("a commit sha has at least 7 hex digits")
    matches = [r for s, r in ctx.state.views.commits.items() if s.startswith(wanted)]
    if not matches:
        return json_error(404, f"unknown commit {wanted}")
    if len(matches) > 1:
        return json_error(409, f"commit {wanted} is ambiguous", "give more digits")
    return web.json_response({"commits": [commit_answer(ctx, matches[0])]})


# -- watched branches and sync -------------------------------------------------------------


def branches_json(ctx: Context) -> list[dict[str, Any]]:
    out = []
    for branch in ctx.engine.watched():
        stream = branch.stream
        planned = None
        if stream is not None:
            planned = ctx.state.last_planned(stream)
        out.append(
            {
                "repository": redact_url(branch.url),
                "branch": branch.branch,
                "stream": stream,
                "fetched": branch.fetched,
                "unavailable": branch.unavailable,
                "last_planned": planned,
            }
        )
    return out


@access("read")
async def list_branches(request: web.Request) -> web.Response:
    return web.json_response({"branches": branches_json(context(request))})


@access("write")
async def sync(request: web.Request) -> web.Response:
    """Fetch a watched branch now (its poll loop wakes). 202: the fetch is under way."""
    ctx = context(request)
    body = await json_body(request)
    repository = body.get("repository") or body.get("repo_url")
    if not isinstance(repository, str) or not repository:
        raise UsageError("repository is required", hint='{"repository": URL, "branch": NAME}')
    branch = body.get("branch")
    if branch is not None and not isinstance(branch, str):
        raise UsageError("branch must be a string")
    stream = find_stream(ctx, repository, branch)
    if not ctx.engine.wake(stream):
        raise UnknownTarget(f"no repository loop runs for {stream}")
    return web.json_response({"syncing": stream}, status=202)


# -- operator commands ---------------------------------------------------------------------


def _event_id(request: web.Request, command: str, target: str) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if not key:
        return None
    digest = hashlib.sha256(f"{command}\0{target}\0{key}".encode()).hexdigest()
    return f"api:{digest[:32]}"


def _extend_seconds(command: Command, body: dict[str, Any]) -> int | None:
    """An extend's length: ``"by": "10m"`` (or ``"seconds": 600``); None for other commands."""
    if command != "extend":
        return None
    by, seconds = body.get("by"), body.get("seconds")
    if isinstance(by, str):
        return parse_duration(by)
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        return parse_duration(str(seconds))
    raise UsageError('extend needs by ("10m") or seconds (600)', hint='{"by": "10m", ...}')


async def _command(request: web.Request, command: Command, target: str) -> web.Response:
    ctx = context(request)
    body = await json_body(request)
    reason = body.get("reason")
    actor = body.get("actor") or "api"
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError("reason is required", hint="say why, for the audit log")
    if not isinstance(actor, str):
        raise UsageError("actor must be a string")
    seconds = _extend_seconds(command, body)
    issued = await issue_command(
        ctx.engine.store,
        command,
        target,
        reason=reason,
        actor=actor,
        event_id=_event_id(request, command, target),
        seconds=seconds,
    )
    ctx.engine.wake_operators()
    event = issued.record.event
    assert isinstance(event, OperatorCommandIssued)
    return web.json_response(
        {
            "command": event.command,
            "target": issued.target,
            "actor": issued.record.meta.actor,
            "reason": event.reason,
            "deployment_id": event.deployment_id,
            "seconds": event.seconds,
            "position": issued.record.position,
            "ops_version": issued.record.version,
        },
        status=202,
    )


def _function_command(command: Command) -> Callable[[web.Request], Any]:
    @access("write")
    async def handler(request: web.Request) -> web.Response:
        return await _command(request, command, request.match_info["function"])

    return handler


@access("write")
async def allow_deletes(request: web.Request) -> web.Response:
    return await _command(request, "allow_deletes", request.match_info["sha"])


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{API}/functions", list_functions)
    r.add_get(f"{API}/functions/{{function}}", get_function)
    for command in COMMANDS:
        if command != "allow_deletes":
            path = f"{API}/functions/{{function}}/{command.replace('_', '-')}"
            r.add_post(path, _function_command(command))
    r.add_get(f"{API}/deployments", list_deployments)
    r.add_get(f"{API}/deployments/{{deployment_id}}", get_deployment)
    r.add_get(f"{API}/releases", list_releases)
    r.add_get(f"{API}/releases/{{release_id}}", get_release)
    r.add_get(f"{API}/commits", list_commits)
    r.add_get(f"{API}/commits/{{sha}}", get_commit)
    r.add_post(f"{API}/commits/{{sha}}/allow-deletes", allow_deletes)
    r.add_get(f"{API}/repositories/watched", list_branches)
    r.add_post(f"{API}/sync", sync)


__all__ = ["add_routes"]
