"""Gitmoxi's API, for teams moving over: the endpoints its CLI (``gmctl``) calls, with its
request and response fields, under the same ``/api/v1`` prefix, so a CI script written for
Gitmoxi works against glam with only the endpoint changed.

    POST   /repositories/add           {repo_url, branches[], access_token_arn}
    GET    /repositories[?repo_url=]   [{repo_url, branches, access_token_arn}]
    DELETE /repositories/delete?repo_url=
    GET    /commits?repo_url=&branch=&n=          (api.py: glam's and Gitmoxi's fields)
    GET    /commits/{commit_hash}                 (api.py)
    POST   /commits/deploy             {repo_url, branch, force}
    POST   /commits/dryrun             {repo_url, branch, process_template}
    POST   /deployments/lambda/query   {repo_url, commit_hash, account_id, region,
                                        function_name, status, start_key, n}
    GET    /deployments/lambda?repo_url=&commit_hash=&function_name=&account_id=&region=
                                        &status=&n=

How glam's records read in Gitmoxi's terms:

- a deployment's ``status``: ``PROCESSING`` while it runs, ``PROCESSED_SUCCESS`` when it
  succeeded, ``PROCESSED_ERROR`` when it rolled back, failed or was superseded;
  ``status_details`` is its timeline, one line per step, reasons included;
- its ``id``: sha256 of ``repo_url#commit_hash#account_id#region#function_name``;
- a commit's ``status``: ``PROCESSED_ERROR`` when a definition was rejected or a deployment
  did not succeed, ``PROCESSING`` while one runs (or the commit is not planned yet),
  ``PROCESSED_SUCCESS`` otherwise; its ``lambda_relevant_files`` is
  ``{change: {file_prefix: [files]}}`` with change ``added_or_modified`` or ``deleted``;
- paging is DynamoDB's: ``last_evaluated_key`` in an answer is passed back as ``start_key``;
  it is absent on the last page.

glam deploys Lambda functions only: the ``ecs`` and ``k8s`` parts of an answer are empty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from engine.definitions.desired import split_path
from engine.errors import SourceError, UsageError
from engine.events.registry import RepositoryAdded, RepositoryRemoved
from engine.redact import redact_url, repository_id
from engine.registry import repository_key
from engine.server.app import Context, context, json_error
from engine.server.auth import access
from engine.server.params import find_stream, json_body
from engine.server.present import iso
from projections.commits import CommitRow
from projections.deployments import DeploymentRow

API = "/api/v1"
PROCESSING = "PROCESSING"
PROCESSED_SUCCESS = "PROCESSED_SUCCESS"
PROCESSED_ERROR = "PROCESSED_ERROR"
STATUSES = (PROCESSING, PROCESSED_SUCCESS, PROCESSED_ERROR)
DEFAULT_PAGE = 25


# -- how glam's records read as Gitmoxi's --------------------------------------------------


def repo_url_of(stream: str | None) -> str:
    """The (redacted) repository URL of a repository stream."""
    if stream is None:
        return ""
    return stream.removeprefix("repo:").rpartition("#")[0]


def deployment_status(row: DeploymentRow) -> str:
    if row.state != "finished":
        return PROCESSING
    return PROCESSED_SUCCESS if row.outcome == "succeeded" else PROCESSED_ERROR


def relevant_files(changes: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """``{change: {file_prefix: [files]}}`` of a commit's changes (``"modified PATH"``)."""
    out: dict[str, dict[str, list[str]]] = {}
    for text in changes:
        kind, _, path = text.partition(" ")
        split = split_path(path)
        if split is None:
            continue
        change = "deleted" if kind == "deleted" else "added_or_modified"
        out.setdefault(change, {}).setdefault(split[0], []).append(path)
    return out


def commit_fields(
    ctx: Context, row: CommitRow, stream: str | None, deployments: Iterable[DeploymentRow]
) -> dict[str, Any]:
    """A commit's Gitmoxi fields."""
    runs = list(deployments)
    details = [f"rejected {r.file}: {r.reason}" for r in row.rejections]
    if row.held_deletes:
        details.append(f"deletes held: {', '.join(row.held_deletes)}")
    details += [
        f"{d.function}: {d.outcome or d.state}" + (f" ({d.reason})" if d.reason else "")
        for d in runs
    ]
    planned = row.sha in ctx.state.planned
    if row.rejections or any(deployment_status(d) == PROCESSED_ERROR for d in runs):
        status = PROCESSED_ERROR
    elif any(deployment_status(d) == PROCESSING for d in runs):
        status = PROCESSING
    elif planned:
        status = PROCESSED_SUCCESS
    elif ctx.state.planned_after(row.sha):
        # glam plans a branch's head: a commit a later head includes is processed with it.
        status = PROCESSED_SUCCESS
        details.append("planned with a later commit of the branch")
    else:
        status = PROCESSING
    files = relevant_files(row.changes)
    return {
        "commit_hash": row.sha,
        "repo_url": repo_url_of(stream),
        "branch": stream.rpartition("#")[2] if stream else "",
        "receive_timestamp": iso(ctx.state.commit_seen_at.get(row.sha, row.updated_at)),
        "status": status,
        "status_details": details,
        "relevant_files": files,
        "lambda_relevant_files": files,
        "ecs_relevant_files": {},
        "k8s_relevant_files": {},
    }


def deployment_id(repo_url: str, commit: str, account: str, region: str, name: str) -> str:
    return hashlib.sha256(f"{repo_url}#{commit}#{account}#{region}#{name}".encode()).hexdigest()


def deployment_record(ctx: Context, row: DeploymentRow) -> dict[str, Any]:
    """One Lambda deployment as Gitmoxi records it (plus glam's own id)."""
    parts = row.function.split(":", 3)
    account, region, name = (parts[1], parts[2], parts[3]) if len(parts) == 4 else ("", "", "")
    repo_url = repo_url_of(ctx.state.repository_of(row.commit, row.function))
    function = ctx.state.views.functions.get(row.function)
    commit = row.commit or ""
    details = [" ".join(p for p in (step.kind, step.name, step.detail) if p) for step in row.steps]
    return {
        "id": deployment_id(repo_url, commit, account, region, name),
        "repo_url": repo_url,
        "commit_hash": commit,
        "account_id": account,
        "region": region,
        "function_name": name,
        "file_prefix": function.prefix if function is not None else None,
        "create_timestamp": iso(row.requested_at or (row.steps[0].at if row.steps else None)),
        "status": deployment_status(row),
        "status_details": details,
        "deployment_id": row.deployment_id,
    }


_FILTERS = ("repo_url", "commit_hash", "account_id", "region", "function_name", "status")


def _matches(record: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    for key in _FILTERS:
        wanted = filters.get(key)
        if wanted in (None, ""):
            continue
        value = record.get(key) or ""
        if key == "repo_url":
            if repository_key(str(wanted)) != repository_key(str(value)):
                return False
        elif key == "commit_hash":
            if not str(value).startswith(str(wanted)):
                return False
        elif str(value) != str(wanted):
            return False
    return True


def query_deployments(
    ctx: Context, filters: Mapping[str, Any], *, start: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Lambda deployment records matching ``filters``, newest first, after ``start`` (a
    position from an earlier answer); the key of the next page."""
    status = filters.get("status")
    if status not in (None, "") and status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}")
    rows = sorted(
        ctx.state.views.deployments.values(),
        key=lambda d: d.steps[0].position if d.steps else d.position,
        reverse=True,
    )
    out: list[dict[str, Any]] = []
    last = 0
    for row in rows:
        key = row.steps[0].position if row.steps else row.position
        if start is not None and key >= start:
            continue
        record = deployment_record(ctx, row)
        if not _matches(record, filters):
            continue
        if len(out) == limit:
            return out, last  # more match: the next page starts after the last one given
        out.append(record)
        last = key
    return out, None


def _start_key(value: Any) -> int | None:
    """A ``start_key`` as this server gave it: ``{"position": N}`` (or N itself)."""
    if value in (None, "", {}):
        return None
    if isinstance(value, dict):
        value = value.get("position")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise UsageError("start_key is not one this server gave", hint="pass last_evaluated_key")


def _page_size(value: Any, default: int = DEFAULT_PAGE) -> int:
    if value in (None, ""):
        return default
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise UsageError("n must be a positive number") from None
    if size < 1:
        raise UsageError("n must be a positive number")
    return min(size, 500)


@access("read")
async def post_query(request: web.Request) -> web.Response:
    """``POST /deployments/lambda/query``: filters in the body, DynamoDB-style paging."""
    ctx = context(request)
    body = await json_body(request)
    size = _page_size(body.get("n") or body.get("limit"))
    start = _start_key(body.get("start_key"))
    records, more = query_deployments(ctx, body, start=start, limit=size)
    answer: dict[str, Any] = {"deployments": records}
    if more is not None:
        answer["last_evaluated_key"] = {"position": more}
    return web.json_response(answer)


@access("read")
async def get_query(request: web.Request) -> web.Response:
    """``GET /deployments/lambda``: the older client's query, first ``n`` records."""
    ctx = context(request)
    filters = dict(request.query)
    size = _page_size(filters.get("n"), 10)
    records, _ = query_deployments(ctx, filters, start=None, limit=size)
    return web.json_response({"deployments": records})


# -- repositories, deploy, dryrun ----------------------------------------------------------


@access("read")
async def get_repositories(request: web.Request) -> web.Response:
    """The repositories watched (the configuration file's and those added through the API),
    one object per repository with its branches and where its token is read (a reference,
    never the token)."""
    ctx = context(request)
    wanted = request.query.get("repo_url")
    tokens = {repository_id(w.url): w.token.ref for w in ctx.engine.watching if w.token}
    by_url: dict[str, dict[str, Any]] = {}
    for branch in ctx.engine.watched():
        url = redact_url(branch.url)
        if wanted and repository_key(wanted) != repository_key(url):
            continue
        token = tokens.get(repository_id(branch.url), "")
        entry = by_url.setdefault(url, {"repo_url": url, "branches": [], "access_token_arn": token})
        if branch.branch:
            entry["branches"].append(branch.branch)
    return web.json_response(list(by_url.values()))


@access("write")
async def add_repository(request: web.Request) -> web.Response:
    """``POST /repositories/add``: watch a repository from now on and after a restart (one
    ``RepositoryAdded`` on the ``repositories`` stream); added again, its branches and token
    reference replace the earlier ones. The answer echoes what was recorded."""
    ctx = context(request)
    body = await json_body(request)
    url, branches = body.get("repo_url"), body.get("branches") or []
    token = body.get("access_token_arn") or None
    if not isinstance(url, str):
        raise UsageError("repo_url is required", hint='e.g. {"repo_url": URL, "branches": [...]}')
    if not isinstance(branches, list):
        raise UsageError("branches must be a list of branch names")
    if token is not None and not isinstance(token, str):
        raise UsageError("access_token_arn must be a string")
    record = await ctx.engine.add_repository(url, branches, token, actor=_actor(body))
    event = record.event
    assert isinstance(event, RepositoryAdded)
    await ctx.state.caught_up(record.position)
    return web.json_response(
        {
            "repo_url": event.url,
            "branches": list(event.branches),
            "access_token_arn": event.token or "",
            "position": record.position,
        }
    )


@access("write")
async def delete_repository(request: web.Request) -> web.Response:
    """``DELETE /repositories/delete?repo_url=``: stop watching a repository added through
    the API (one ``RepositoryRemoved``). Nothing is deleted: its functions stay as they are."""
    ctx = context(request)
    url = request.query.get("repo_url")
    if not url:
        raise UsageError("repo_url is required", hint="DELETE /repositories/delete?repo_url=URL")
    actor = request.query.get("actor") or "api"
    record = await ctx.engine.remove_repository(url, actor=actor)
    event = record.event
    assert isinstance(event, RepositoryRemoved)
    await ctx.state.caught_up(record.position)
    return web.json_response({"repo_url": event.url, "removed": True, "position": record.position})


def _actor(body: Mapping[str, Any]) -> str:
    actor = body.get("actor") or "api"
    if not isinstance(actor, str):
        raise UsageError("actor must be a string")
    return actor


def _files_of(observation_commits: Iterable[Any]) -> dict[str, dict[str, list[str]]]:
    changes: list[str] = []
    for commit in observation_commits:
        changes += [f"{c.change} {c.path}" for c in commit.changes]
    return relevant_files(dict.fromkeys(changes))


def _artifacts(head: str, base: str | None, files: dict[str, Any]) -> dict[str, Any]:
    return {
        "latest_commit_hash": head,
        "last_known_commit_hash": base or "",
        "ecs": {"ecs_relevant_files": {}},
        "lambda": {"lambda_relevant_files": files},
        "k8s": {"k8s_relevant_files": {}},
    }


def _stream_for(ctx: Context, body: Mapping[str, Any]) -> str:
    repo_url = body.get("repo_url")
    branch = body.get("branch")
    if not isinstance(repo_url, str) or not repo_url:
        raise UsageError("repo_url is required")
    if branch is not None and not isinstance(branch, str):
        raise UsageError("branch must be a string")
    return find_stream(ctx, repo_url, branch or None)


@access("write")
async def deploy(request: web.Request) -> web.Response:
    """``POST /commits/deploy``: fetch the branch and plan its head now (``force``: plan it
    again even if it was planned); the deployments it asks for start at once."""
    ctx = context(request)
    body = await json_body(request)
    stream = _stream_for(ctx, body)
    repository = ctx.engine.repository(stream)
    if repository is None:
        return json_error(404, f"no repository loop runs for {stream}")
    previous = ctx.state.last_planned(stream)
    head = await repository.poll(force=bool(body.get("force")))
    if head is None:
        raise SourceError(f"{repo_url_of(stream)} could not be read: {repository.unavailable}")
    # The answer is read from the log as the server folds it: let it reach what was planned.
    await ctx.state.caught_up(await ctx.engine.store.last_position())
    files = _changed_since(ctx, stream, previous, head)
    return web.json_response(_artifacts(head, previous, files))


def _changed_since(ctx: Context, stream: str, previous: str | None, head: str) -> dict[str, Any]:
    """The Lambda files changed by the commits after ``previous`` up to ``head`` that the
    log holds for the branch."""
    seen = ctx.state.commit_seen
    start = seen.get(previous, 0) if previous else 0
    changes: list[str] = []
    for sha, position in sorted(seen.items(), key=lambda kv: kv[1]):
        if position > start and ctx.state.commit_repos.get(sha) == stream:
            row = ctx.state.views.commits.get(sha)
            if row is not None:
                changes += row.changes
    return relevant_files(dict.fromkeys(changes))


@access("read")
async def dryrun(request: web.Request) -> web.Response:
    """``POST /commits/dryrun``: what a deploy would do now, recording nothing. With
    ``process_template`` the answer also has the plan: each function's action and every
    definition that does not render."""
    ctx = context(request)
    body = await json_body(request)
    stream = _stream_for(ctx, body)
    repository = ctx.engine.repository(stream)
    if repository is None:
        return json_error(404, f"no repository loop runs for {stream}")
    preview = await repository.preview()
    if preview is None:
        raise SourceError(f"{repo_url_of(stream)} could not be read: {repository.unavailable}")
    observation, base, plan = preview
    files = _files_of(observation.commits)
    artifacts = _artifacts(observation.head, base, files) if files else {}
    answer: dict[str, Any] = {"deployment_artifacts_from_changed_files": artifacts}
    if body.get("process_template"):
        answer["plan"] = {
            "actions": [
                {
                    "file_prefix": a.prefix,
                    "function": a.function,
                    "action": a.action,
                    "reason": a.reason,
                }
                for a in plan.actions
            ],
            "rejected": [
                {"file": r.file, "reason": r.reason, "line": r.line} for r in plan.rejected
            ],
            "held": list(plan.held),
        }
    return web.json_response(answer)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{API}/repositories", get_repositories)
    r.add_post(f"{API}/repositories/add", add_repository)
    r.add_delete(f"{API}/repositories/delete", delete_repository)
    r.add_post(f"{API}/commits/deploy", deploy)
    r.add_post(f"{API}/commits/dryrun", dryrun)
    r.add_post(f"{API}/deployments/lambda/query", post_query)
    r.add_get(f"{API}/deployments/lambda", get_query)
