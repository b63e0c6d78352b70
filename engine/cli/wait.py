"""``glam wait``: block until a commit's (or a function's) deployments finish — for CI.

    glam wait --commit "$GITHUB_SHA" --timeout 20m        every deployment of that commit
    glam wait orders                                      the deployment of orders in flight
    glam wait --commit 4f2a91c --server https://glam.internal:8080 --token-env GLAM_TOKEN

Exit codes: 0 every deployment succeeded, 1 one rolled back or failed (or the commit had a
rejected definition or held deletes), 2 the timeout passed first.

``wait`` keeps no state of its own: it folds the log (the local database, or the engine's
``/api/v1/events`` with ``--server``) and judges what it holds, so a restart of the engine or
of ``wait`` itself loses nothing — run it again and it answers from the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, read_log
from engine.cli.history import deployment_json, function_name
from engine.cli.output import examples, parse_duration, print_json, unknown_function
from engine.errors import GlamError, UsageError
from engine.events import Metadata, RecordedEvent
from engine.events.catalog import EVENT_ADAPTER
from engine.events.repo import CommitPlanned, DefinitionRejected, DeletesHeld
from engine.streams import FUNCTION_PREFIX
from projections.deployments import DeploymentRow
from projections.views import Views

OK_OUTCOMES = frozenset({"succeeded", "superseded"})
EXIT_TIMEOUT = 2


@dataclass
class Verdict:
    """What the log says about what is waited for: finished or not, and how."""

    done: bool
    deployments: list[DeploymentRow] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)  # a newer commit deploys them instead

    @property
    def ok(self) -> bool:
        return (
            all(d.outcome in OK_OUTCOMES for d in self.deployments)
            and not self.rejected
            and not self.held
        )


class Tracker:
    """The views of the log folded so far, and the commits whose plan it has seen (a commit
    whose plan does nothing leaves no other trace in the views)."""

    def __init__(self) -> None:
        self.views = Views()
        self.planned: dict[str, int] = {}  # sha -> the log position of its plan

    def apply(self, record: RecordedEvent) -> None:
        event = record.event
        if isinstance(event, CommitPlanned | DefinitionRejected | DeletesHeld):
            self.planned.setdefault(event.sha, record.position)
        self.views.apply(record)

    def superseded(self, stream: str, sha: str) -> bool:
        """Whether a deployment of another commit was asked for ``stream`` after ``sha`` was
        planned: the one ``sha`` asked for may then never start (its plan is stale)."""
        after = self.planned.get(sha, 0)
        return any(
            d.function == stream and d.commit != sha and d.steps and d.steps[0].position > after
            for d in self.views.deployments.values()
        )


def _latest(rows: list[DeploymentRow]) -> dict[str, DeploymentRow]:
    """The most recent deployment of each function among ``rows`` (a retry replaces a
    rolled-back one)."""
    latest: dict[str, DeploymentRow] = {}
    for row in sorted(rows, key=lambda r: r.steps[0].position if r.steps else r.position):
        latest[row.function] = row
    return latest


def match_commit(tracker: Tracker, sha: str) -> str | None:
    """The full sha the log knows for ``sha`` (a prefix of 4 or more hex digits), or None."""
    found = [known for known in tracker.views.commits if known.startswith(sha)]
    if len(found) > 1:
        raise UsageError(
            f"commit {sha!r} is ambiguous: {', '.join(k[:12] for k in found[:4])}",
            hint="give more of the sha",
        )
    return found[0] if found else None


def judge_commit(tracker: Tracker, sha: str, streams: frozenset[str] | None) -> Verdict:
    """Whether every deployment the commit's plan asks for (of ``streams``, if given) has
    finished; a commit not yet planned is pending."""
    full = match_commit(tracker, sha)
    if full is None or full not in tracker.planned:
        return Verdict(done=False, pending=[f"commit {sha[:12]} not planned yet"])
    row = tracker.views.commits[full]
    views = tracker.views
    ours = [views.deployments[d] for d in row.deployments if d in views.deployments]
    latest = _latest([d for d in ours if streams is None or d.function in streams])
    verdict = Verdict(done=True)
    for action in row.planned:
        if action.action == "nothing" or (streams is not None and action.function not in streams):
            continue
        deployment = latest.get(action.function)
        if deployment is None and tracker.superseded(action.function, full):
            verdict.superseded.append(function_name(action.function))
        elif deployment is None:
            verdict.pending.append(f"{function_name(action.function)}: not started")
        elif deployment.state != "finished":
            verdict.pending.append(f"{function_name(action.function)}: {deployment.state}")
    for deployment in latest.values():  # also those a release of held deletes asked for
        if deployment.state != "finished" and deployment.function not in {
            a.function for a in row.planned
        }:
            verdict.pending.append(f"{function_name(deployment.function)}: {deployment.state}")
    verdict.deployments = list(latest.values())
    if streams is None:
        verdict.rejected = [f"{r.file}: {r.reason}" for r in row.rejections]
        if row.deletes_allowed_by is None:
            verdict.held = [f"{p} (glam allow-deletes {full[:12]})" for p in row.held_deletes]
    verdict.done = not verdict.pending
    return verdict


def judge_functions(tracker: Tracker, streams: frozenset[str]) -> Verdict:
    """Whether the latest deployment of each function has finished."""
    latest = _latest([d for d in tracker.views.deployments.values() if d.function in streams])
    verdict = Verdict(done=True, deployments=list(latest.values()))
    for stream in sorted(streams):
        deployment = latest.get(stream)
        if deployment is None:
            verdict.pending.append(f"{function_name(stream)}: no deployment yet")
        elif deployment.state != "finished":
            verdict.pending.append(f"{function_name(stream)}: {deployment.state}")
    verdict.done = not verdict.pending
    return verdict


def resolve_function(tracker: Tracker, function: str) -> frozenset[str]:
    """The function streams ``function`` names: a stream, or every stream with that name."""
    rows = tracker.views.functions.values()
    if function.startswith(FUNCTION_PREFIX):
        named = frozenset(r.stream for r in rows if r.stream == function)
    else:
        named = frozenset(r.stream for r in rows if r.name == function)
    if not named:
        raise unknown_function(function, (r.name for r in rows))
    return named


# -- where the log comes from --------------------------------------------------------------


async def local_batches(db: Any) -> AsyncGenerator[list[RecordedEvent], None]:
    """The local log: what it holds, in batches, then each new event as it is appended."""
    async with read_log(db) as store:
        position = 1
        while batch := await store.read_all(position, limit=5000):
            yield batch
            position = batch[-1].position + 1
        yield []  # caught up: judge what the log holds even when it is empty
        async for record in store.follow(position):
            yield [record]


def record_from_json(item: dict[str, Any]) -> RecordedEvent:
    """An event as the API (and ``glam events --json``) prints it, parsed back."""
    from datetime import datetime

    return RecordedEvent(
        position=int(item["position"]),
        stream=item["stream"],
        version=int(item["version"]),
        event=EVENT_ADAPTER.validate_python({**item["data"], "type": item["type"]}),
        meta=Metadata.model_validate(item["meta"]),
        recorded_at=datetime.fromisoformat(item["recorded_at"]),
        hash=item.get("hash", ""),
    )


def _get_json(url: str, token: str | None) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) checked in server_batches
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def server_token(token_env: str | None) -> str | None:
    """The API token from the variable ``--token-env`` names (never from the command line,
    which other users of the machine can read)."""
    if token_env is None:
        return None
    token = os.environ.get(token_env)
    if not token:
        raise UsageError(f"${token_env} is empty or not set", hint="export the API token in it")
    return token


async def server_batches(
    server: str, token: str | None, *, poll: float = 1.0
) -> AsyncGenerator[list[RecordedEvent], None]:
    """The engine's log through its HTTP API (``GET /api/v1/events?since=N``), paged, then
    polled; a connection that fails is tried again from where it stopped."""
    if urllib.parse.urlsplit(server).scheme not in ("http", "https"):
        raise UsageError(f"--server {server!r} is not an http(s) URL", hint="e.g. http://host:8080")
    since, caught_up, failures = 0, False, 0
    while True:
        url = f"{server.rstrip('/')}/api/v1/events?since={since}&limit=1000"
        try:
            answer = await anyio.to_thread.run_sync(_get_json, url, token)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise GlamError(
                    f"the server refused the token ({exc.code})", hint="check --token-env"
                ) from None
            if exc.code < 500:
                raise GlamError(f"the server answered {exc.code} for {url}") from None
            failures += 1
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            failures += 1
            if failures > 30 and not caught_up:
                raise GlamError(f"cannot reach {server}: {exc}", retryable=True) from None
        else:
            failures = 0
            events = [record_from_json(e) for e in answer.get("events", [])]
            since = int(answer.get("next_since", events[-1].position if events else since))
            if events:
                yield events
                continue
            if not caught_up:
                caught_up = True
                yield []
        await anyio.sleep(poll if failures == 0 else min(poll * 2**failures, 15.0))


# -- the command ---------------------------------------------------------------------------


@app.command(
    epilog=examples(
        'glam wait --commit "$GITHUB_SHA" --timeout 20m',
        "glam wait orders --json",
        "glam wait --commit 4f2a91c --server http://glam:8080 --token-env GLAM_TOKEN",
    )
)
def wait(
    function: Annotated[
        str | None, typer.Argument(help="Wait for this function's deployment (a name or fn:…).")
    ] = None,
    commit: Annotated[
        str | None, typer.Option(help="Wait for every deployment of this commit (a sha prefix).")
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(help="Give up after this long (90s, 20m, 2h): exit 2. Default: never."),
    ] = None,
    db: DbOption = None,
    server: Annotated[
        str | None,
        typer.Option(help="Read the log of the engine serving this URL instead of --db."),
    ] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Env var holding the API token for --server.")
    ] = None,
    as_json: JsonOption = False,
) -> int:
    """Block until a commit's deployments (or a function's) have finished: exit 0 if all
    succeeded, 1 if one rolled back or failed, 2 on timeout."""
    if function is None and commit is None:
        raise UsageError("nothing to wait for", hint="pass --commit SHA, a function, or both")
    if commit is not None and (len(commit) < 4 or not all(c in "0123456789abcdef" for c in commit)):
        raise UsageError(f"--commit {commit!r} is not a sha", hint="4 or more hex digits")
    seconds = None if timeout is None else parse_duration(timeout, option="--timeout")
    token = server_token(token_env)

    def source() -> AsyncGenerator[list[RecordedEvent], None]:
        return server_batches(server, token) if server is not None else local_batches(db)

    verdict = anyio.run(_wait, source, function, commit, seconds)
    if verdict is None:
        if as_json:
            print_json({"result": "timeout", "timeout_seconds": seconds})
        else:
            typer.echo(f"glam: timed out after {timeout}", err=True)
        return EXIT_TIMEOUT
    _report(verdict, as_json=as_json)
    return 0 if verdict.ok else 1


async def _wait(
    source: Callable[[], AsyncGenerator[list[RecordedEvent], None]],
    function: str | None,
    commit: str | None,
    seconds: float | None,
) -> Verdict | None:
    tracker = Tracker()
    streams: frozenset[str] | None = None
    caught_up = False
    shown: list[str] = []
    # aclosing: the source is closed here, in this task, on return or timeout (a PostgreSQL
    # store's task group inside it must exit in the task that entered it).
    with anyio.move_on_after(seconds):
        async with contextlib.aclosing(source()) as batches:
            async for batch in batches:
                for record in batch:
                    tracker.apply(record)
                if not batch:
                    caught_up = True
                if not caught_up:
                    continue
                if function is not None and streams is None:
                    streams = resolve_function(tracker, function)
                if commit is not None:
                    verdict = judge_commit(tracker, commit.lower(), streams)
                else:
                    assert streams is not None
                    verdict = judge_functions(tracker, streams)
                if verdict.done:
                    return verdict
                if verdict.pending != shown:  # what it waits for, on stderr, as it changes
                    shown = verdict.pending
                    typer.echo(f"waiting for {'; '.join(shown)}", err=True)
    return None


def _report(verdict: Verdict, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "result": "succeeded" if verdict.ok else "failed",
                "deployments": [deployment_json(d) for d in verdict.deployments],
                "rejected": verdict.rejected,
                "held_deletes": verdict.held,
                "superseded": verdict.superseded,
            }
        )
        return
    for d in sorted(verdict.deployments, key=lambda r: r.function):
        reason = f" ({d.reason})" if d.reason else ""
        typer.echo(f"{function_name(d.function)}: {d.outcome}{reason}")
    for name in verdict.superseded:
        typer.echo(f"{name}: superseded by a newer commit before it started")
    for rejected in verdict.rejected:
        typer.echo(f"rejected: {rejected}", err=True)
    for held in verdict.held:
        typer.echo(f"held for an operator: {held}", err=True)
    if not verdict.deployments and not verdict.superseded and verdict.ok:
        typer.echo("nothing to deploy")


__all__ = ["Tracker", "Verdict", "judge_commit", "judge_functions", "wait"]
