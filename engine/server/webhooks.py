"""Push triggers: a push to a watched branch fetches it at once (the poll stays the safety net).

    POST /hooks/github    GitHub push events, signed: X-Hub-Signature-256: sha256=HMAC(body)
    POST /hooks/gitlab    GitLab push events, with the secret token: X-Gitlab-Token
    POST /hooks/generic   anything that can sign a small JSON body (docs/api.md):
                          X-Glam-Timestamp: unix seconds
                          X-Glam-Delivery: a unique id
                          X-Glam-Signature-256: sha256=HMAC(timestamp + "." + body)
                          {"repository": URL, "branch": NAME}

Every delivery is checked in this order, each refusal counted in
``glam_webhook_deliveries_total{provider,outcome}``:

    too_large            413  the body is over the limit (read no further)
    bad_signature        401  signature or token missing or wrong (constant-time compare);
                              no secret configured refuses everything the same way
    malformed            400  not JSON, or not a push event's shape
    replayed             409  a delivery id seen before (GitHub's X-GitHub-Delivery, GitLab's
                              Idempotency-Key or X-Gitlab-Event-UUID, X-Glam-Delivery), or a
                              generic timestamp more than five minutes off
    unknown_repository   404  no watched repository matches
    ignored              202  a branch that is not watched, a tag, a branch deletion, an event
                              that is not a push (GitHub's ping answers 200)
    accepted             202  the branch's loop is woken: it fetches now

The signature is checked before anything in the body is believed, so an unsigned request
learns nothing about what is watched. The delivery ids are remembered in memory (the last
``REMEMBERED``): a restart forgets them, which at worst fetches a branch once more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from engine.logs import get_logger
from engine.registry import repository_key
from engine.server.app import Context, context
from engine.server.auth import access, token_matches

log = get_logger("server")

REMEMBERED = 10_000  # delivery ids kept for replay protection
SKEW = 300.0  # seconds a generic delivery's timestamp may be off


@dataclass(frozen=True, slots=True)
class Push:
    """What a push delivery says: the repository's URLs (any may match a watched one), the
    branch (None for a tag or another ref), the new head if it says, and whether the push
    deleted the branch."""

    urls: tuple[str, ...]
    branch: str | None
    head: str | None
    deleted: bool = False


class Refused(Exception):
    """A delivery refused: its HTTP status, the outcome counted, the message answered."""

    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.message = message


class Deliveries:
    """The delivery ids seen (per provider), the oldest forgotten first."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._size = size

    def first_time(self, provider: str, delivery: str) -> bool:
        key = (provider, delivery)
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def _deliveries(ctx: Context) -> Deliveries:
    found = ctx.extra.get("deliveries")
    if not isinstance(found, Deliveries):
        found = ctx.extra["deliveries"] = Deliveries()
    return found


# -- reading a delivery --------------------------------------------------------------------


async def _body(request: web.Request, ctx: Context) -> bytes:
    limit = ctx.settings.max_body
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, "too_large", f"the body is over {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise Refused(413, "too_large", f"the body is over {limit} bytes")
    return body


async def _secret(ctx: Context) -> str:
    ref = ctx.settings.webhook_secret
    value = await ctx.engine.read_secret(ref) if ref is not None else None
    if value is None:
        # Refused as a bad signature: a receiver with no secret trusts nothing.
        raise Refused(401, "bad_signature", "no webhook secret is configured")
    return value


def _hmac(secret: str, data: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def _check_signature(given: str | None, secret: str, data: bytes) -> None:
    if not token_matches(given, _hmac(secret, data)):
        raise Refused(401, "bad_signature", "missing or wrong signature")


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(400, "malformed", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "malformed", "the body is not a JSON object")
    return data


def _branch_of(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    return None


_ZERO = "0" * 40


def _push_of(data: dict[str, Any], url_keys: tuple[str, ...], repo_key: str) -> Push:
    repo = data.get(repo_key)
    if not isinstance(repo, dict):
        raise Refused(400, "malformed", f"a push event has a {repo_key!r} object")
    urls = tuple(str(repo[k]) for k in url_keys if isinstance(repo.get(k), str) and repo[k])
    if not urls:
        raise Refused(400, "malformed", "the push names no repository URL")
    after = data.get("after")
    head = after if isinstance(after, str) and after else None
    deleted = data.get("deleted") is True or head == _ZERO
    return Push(urls, _branch_of(data.get("ref")), None if deleted else head, deleted)


def github_push(request: web.Request, body: bytes, secret: str) -> Push | str:
    """The push a GitHub delivery carries, or the answer to a delivery that is none."""
    _check_signature(request.headers.get("X-Hub-Signature-256"), secret, body)
    event = request.headers.get("X-GitHub-Event", "")
    data = _json(body)
    if event == "ping":
        return "pong"
    if event != "push":
        return f"ignored: a {event or 'unnamed'} event is not a push"
    keys = ("clone_url", "ssh_url", "git_url", "html_url", "url", "svn_url")
    return _push_of(data, keys, "repository")


def gitlab_push(request: web.Request, body: bytes, secret: str) -> Push | str:
    given = request.headers.get("X-Gitlab-Token")
    if not token_matches(given, secret):
        raise Refused(401, "bad_signature", "missing or wrong X-Gitlab-Token")
    data = _json(body)
    kind = data.get("object_kind") or request.headers.get("X-Gitlab-Event", "")
    if kind not in ("push", "Push Hook"):
        return f"ignored: a {kind or 'unnamed'} event is not a push"
    keys = ("git_http_url", "git_ssh_url", "http_url", "ssh_url", "homepage", "url")
    where = "project" if isinstance(data.get("project"), dict) else "repository"
    return _push_of(data, keys, where)


def generic_push(request: web.Request, body: bytes, secret: str, now: float) -> Push | str:
    stamp = request.headers.get("X-Glam-Timestamp", "")
    _check_signature(
        request.headers.get("X-Glam-Signature-256"), secret, stamp.encode() + b"." + body
    )
    try:
        skew = abs(now - float(stamp))
    except ValueError:
        raise Refused(400, "malformed", "X-Glam-Timestamp is not unix seconds") from None
    if skew > SKEW:
        raise Refused(409, "replayed", f"the timestamp is {skew:.0f} s off (more than {SKEW:.0f})")
    data = _json(body)
    repository, branch = data.get("repository"), data.get("branch")
    if not isinstance(repository, str) or not repository:
        raise Refused(400, "malformed", 'the body names no "repository"')
    if branch is not None and not isinstance(branch, str):
        raise Refused(400, "malformed", '"branch" must be a string')
    head = data.get("after") if isinstance(data.get("after"), str) else None
    return Push((repository,), branch, head)


def _delivery_id(provider: str, request: web.Request) -> str | None:
    if provider == "github":
        return request.headers.get("X-GitHub-Delivery")
    if provider == "gitlab":
        return request.headers.get("Idempotency-Key") or request.headers.get("X-Gitlab-Event-UUID")
    return request.headers.get("X-Glam-Delivery")


# -- acting on it --------------------------------------------------------------------------


def match(ctx: Context, push: Push) -> tuple[str | None, bool]:
    """The repository stream a push wakes (None: none), and whether any watched repository
    matched its URLs at all."""
    wanted = {repository_key(u) for u in push.urls}
    known = False
    for branch in ctx.engine.watched():
        if repository_key(branch.url) not in wanted:
            continue
        known = True
        if push.branch is not None and branch.stream is not None and branch.branch == push.branch:
            return branch.stream, True
        if push.branch is not None and branch.stream is None:
            return None, True  # the default branch is not known yet: the loop fetches soon
    return None, known


async def _receive(request: web.Request, provider: str) -> web.Response:
    ctx = context(request)
    try:
        body = await _body(request, ctx)
        secret = await _secret(ctx)
        if provider == "generic":
            push = generic_push(request, body, secret, ctx.engine.clock.now().timestamp())
        else:
            parse = {"github": github_push, "gitlab": gitlab_push}[provider]
            push = parse(request, body, secret)
        delivery = _delivery_id(provider, request)
        if delivery and not _deliveries(ctx).first_time(provider, delivery):
            raise Refused(409, "replayed", f"delivery {delivery} was received before")
        if isinstance(push, str):
            outcome = "accepted" if push == "pong" else "ignored"
            ctx.metrics.webhook(provider, outcome)
            return web.json_response({"result": push}, status=200 if push == "pong" else 202)
        stream, known = match(ctx, push)
        if not known:
            raise Refused(404, "unknown_repository", "no watched repository matches the push")
        if stream is None or push.deleted:
            why = "a branch deletion" if push.deleted else "a branch that is not watched"
            ctx.metrics.webhook(provider, "ignored")
            return web.json_response({"result": f"ignored: {why}"}, status=202)
        ctx.engine.wake(stream)
        ctx.metrics.webhook(provider, "accepted")
        log.info("%s push to %s: fetching it now", provider, stream)
        return web.json_response(
            {"result": "fetching", "stream": stream, "head": push.head}, status=202
        )
    except Refused as refused:
        ctx.metrics.webhook(provider, refused.outcome)
        log.warning("%s webhook refused (%d): %s", provider, refused.status, refused.message)
        return web.json_response({"error": refused.message}, status=refused.status)


@access("open")
async def github(request: web.Request) -> web.Response:
    return await _receive(request, "github")


@access("open")
async def gitlab(request: web.Request) -> web.Response:
    return await _receive(request, "gitlab")


@access("open")
async def generic(request: web.Request) -> web.Response:
    return await _receive(request, "generic")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/hooks/github", github)
    app.router.add_post("/hooks/gitlab", gitlab)
    app.router.add_post("/hooks/generic", generic)
