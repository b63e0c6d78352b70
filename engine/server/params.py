"""What requests carry, read the same way by every API module: page sizes and cursors, JSON
bodies, and the repositories and functions a request names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, cast

from aiohttp import web

from engine.commands import UnknownTarget
from engine.errors import SourceError, UsageError
from engine.redact import redact_url
from engine.registry import repository_key
from engine.server.app import Context
from engine.streams import REPO_PREFIX

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")


def limit_of(request: web.Request, *names: str, default: int = DEFAULT_LIMIT) -> int:
    """The page size the request asks for (the first of ``names`` given), within bounds."""
    for name in names or ("limit",):
        text = request.query.get(name)
        if text is not None:
            if not text.isdigit() or int(text) < 1:
                raise UsageError(f"{name} must be a positive number", hint=f"e.g. {name}=50")
            return min(int(text), MAX_LIMIT)
    return default


def cursor_of(request: web.Request) -> int | None:
    text = request.query.get("cursor")
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise UsageError("cursor is not one this server gave", hint="pass next_cursor as given")
    return int(text)


def page(
    items: Iterable[tuple[int, T]], *, cursor: int | None, limit: int
) -> tuple[list[T], int | None]:
    """Items (keyed by a position, newest first) after ``cursor``, at most ``limit``; and the
    cursor of the next page (None on the last)."""
    ordered = sorted(items, key=lambda kv: kv[0], reverse=True)
    if cursor is not None:
        ordered = [kv for kv in ordered if kv[0] < cursor]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return [v for _, v in chosen], (chosen[-1][0] if more and chosen else None)


def same_repository(stream: str | None, url: str) -> bool:
    """Whether repository stream ``stream`` is of the repository ``url`` names, in any URL
    form (any branch); ``url`` may also be the stream itself."""
    if stream is None:
        return False
    if url == stream:
        return True
    body = stream[len(REPO_PREFIX) :] if stream.startswith(REPO_PREFIX) else stream
    return repository_key(body.rpartition("#")[0]) == repository_key(url)


def branch_of(stream: str | None) -> str | None:
    return None if stream is None else stream.rpartition("#")[2]


def function_matches(stream: str, wanted: str) -> bool:
    """``wanted`` is the stream itself or the function's name."""
    return stream == wanted or stream.rsplit(":", 1)[-1] == wanted


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); 400 for anything else."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise UsageError("the body is not JSON", hint="send application/json") from None
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object")
    return cast(dict[str, Any], data)


def find_stream(ctx: Context, repository: str, branch: str | None) -> str:
    """The repository stream of a watched ``repository`` and ``branch`` (None: the only
    branch watched in it); ``UnknownTarget`` when this engine watches no such branch."""
    key = repository_key(repository)
    matching = [
        w
        for w in ctx.engine.watched()
        if repository_key(w.url) == key and (branch is None or w.branch in (branch, None))
    ]
    found = [w.stream for w in matching if w.stream is not None]
    if not found and matching:
        raise SourceError(
            f"{redact_url(repository)} has not been read yet",
            hint="its first fetch learns the default branch: try again shortly",
        )
    if not found:
        raise UnknownTarget(
            f"this engine watches no branch {branch or '(any)'} of {redact_url(repository)}",
            hint="GET /api/v1/repositories/watched lists what it watches",
        )
    if len(found) > 1:
        raise UsageError(f"{redact_url(repository)} has several branches watched: name one")
    return found[0]
