"""Notifications: which events make one, the Slack payload field by field, and delivery over
real HTTP to a sink on 127.0.0.1 (received, retried after a 500, given up after the bound,
not retried after a 4xx, dropped when the queue is full), all counted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from engine.config import parse_config
from engine.errors import ConfigFileError
from engine.events import Metadata, RecordedEvent
from engine.events.function import DeploymentFinished, DeploymentRequested, FunctionOwner
from engine.events.repo import DeletesHeld
from engine.notify import (
    DeliveryCounters,
    Notifier,
    RetryPolicy,
    Route,
    notification_for,
    routes_from,
    slack_payload,
    webhook_payload,
)
from engine.notify.http import AiohttpPoster
from engine.testing import AutojumpClock
from engine.tokens import TokenRef

ORDERS = "fn:111111111111:eu-west-1:orders"
REPO = "github.com/acme/lambdas"
OWNER = FunctionOwner(repository=REPO, branch="main", prefix="apps/orders/orders")
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SHA = "4f2a91c0" * 5


def record(position: int, event: Any, stream: str = ORDERS) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream=stream,
        version=position,
        event=event,
        meta=Metadata(event_id=f"e{position}", commit=SHA),
        recorded_at=AT,
        hash="",
    )


REQUESTED = DeploymentRequested(
    deployment_id="dep-9", commit=SHA, action="update", desired=None, owner=OWNER
)
ROLLED_BACK = DeploymentFinished(
    deployment_id="dep-9", outcome="rolled_back", reason="alarm orders-errors is in ALARM"
)


def test_which_events_notify() -> None:
    owners: dict[str, FunctionOwner] = {}
    commits: dict[str, tuple[str, str]] = {}
    started = notification_for(record(1, REQUESTED), owners, commits)
    assert started is not None
    assert (started.kind, started.function, started.repository) == ("started", "orders", REPO)
    rolled = notification_for(record(2, ROLLED_BACK), owners, commits)
    assert rolled is not None
    assert (rolled.kind, rolled.reason, rolled.commit, rolled.action, rolled.branch) == (
        "rolled_back",
        "alarm orders-errors is in ALARM",
        SHA,
        "update",  # from the deployment's request, as the commit is
        "main",
    )
    assert commits == {}
    ok = DeploymentFinished(deployment_id="dep-9", outcome="succeeded", stable_version="3")
    assert notification_for(record(3, ok), owners, commits).kind == "promoted"  # type: ignore[union-attr]
    superseded = DeploymentFinished(deployment_id="dep-9", outcome="superseded")
    notification_for(record(4, REQUESTED), owners, commits)
    assert notification_for(record(5, superseded), owners, commits) is None
    assert commits == {}  # a finished deployment's request is forgotten: nothing grows
    held = DeletesHeld(sha=SHA, prefixes=("apps/a", "apps/b"), share=1.0, limit=0.5)
    n = notification_for(record(6, held, f"repo:https://{REPO}.git#main"), owners, commits)
    assert n is not None
    assert n.kind == "deletes_held"
    assert f"glam allow-deletes {SHA[:12]}" in n.reason


def test_slack_payload_field_by_field() -> None:
    owners: dict[str, FunctionOwner] = {}
    commits: dict[str, tuple[str, str]] = {}
    notification_for(record(1, REQUESTED), owners, commits)
    n = notification_for(record(2, ROLLED_BACK), owners, commits)
    assert n is not None
    payload = slack_payload(n, "https://glam.acme.internal")
    assert payload["text"] == (
        ":rewind: deployment rolled back: orders (eu-west-1) — alarm orders-errors is in ALARM"
    )
    section, context, actions = payload["blocks"]
    assert section == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*:rewind: deployment rolled back: orders (eu-west-1)*\n"
            "alarm orders-errors is in ALARM",
        },
    }
    assert context == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": f"commit `{SHA[:12]}` · deployment `dep-9` · {REPO} main",
            }
        ],
    }
    assert actions == {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in glam"},
                "url": "https://glam.acme.internal/api/v1/deployments/dep-9",
            }
        ],
    }
    assert len(slack_payload(n, None)["blocks"]) == 2  # no public URL: no link button
    hook = webhook_payload(n, None)
    assert hook["kind"] == "rolled_back"
    assert hook["function"] == {"name": "orders", "account": "111111111111", "region": "eu-west-1"}
    assert hook["deployment"] == {"id": "dep-9", "action": "update", "commit": SHA}
    assert hook["link"] is None


@dataclass
class Sink:
    """An HTTP endpoint on 127.0.0.1 answering with ``statuses`` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(json.loads(await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    found = Sink()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()


async def deliver(
    sink: Sink,
    events: list[RecordedEvent],
    *,
    kind: str = "webhook",
    attempts: int = 3,
    queue_size: int = 100,
) -> DeliveryCounters:
    counters = DeliveryCounters()
    route = Route(
        kind=kind,
        url=TokenRef("env", "GLAM_TEST_HOOK"),
        events=frozenset({"started", "rolled_back", "promoted"}),
        repository=REPO,
    )

    async def resolve(ref: TokenRef) -> str:
        assert ref.ref == "GLAM_TEST_HOOK"
        return sink.url

    async with AiohttpPoster() as poster:
        notifier = Notifier(
            [route],
            poster=poster,
            resolve=resolve,
            clock=AutojumpClock(),
            policy=RetryPolicy(attempts=attempts, base=0.01, timeout=5),
            counters=counters,
            queue_size=queue_size,
        )
        for r in events:
            notifier(r)  # the engine's hook: never waits
        notifier.close()
        with anyio.fail_after(30):
            await notifier.run()
    return counters


@pytest.mark.anyio
async def test_a_local_sink_receives_them(sink: Sink) -> None:
    counters = await deliver(sink, [record(1, REQUESTED), record(2, ROLLED_BACK)])
    assert [p["kind"] for p in sink.received] == ["started", "rolled_back"]
    assert sink.received[1]["reason"] == "alarm orders-errors is in ALARM"
    assert counters.snapshot() == {("webhook", "delivered"): 2}


@pytest.mark.anyio
async def test_retried_after_a_500(sink: Sink) -> None:
    sink.statuses = [500, 503]
    counters = await deliver(sink, [record(2, ROLLED_BACK)], kind="slack")
    assert len(sink.received) == 3
    assert sink.received[-1]["text"].startswith(":rewind: deployment rolled back")
    assert counters.snapshot() == {("slack", "retried"): 2, ("slack", "delivered"): 1}


@pytest.mark.anyio
async def test_given_up_after_the_bound(sink: Sink) -> None:
    sink.statuses = [500] * 10
    counters = await deliver(sink, [record(2, ROLLED_BACK)], attempts=4)
    assert len(sink.received) == 4
    assert counters.snapshot() == {("webhook", "retried"): 3, ("webhook", "gave_up"): 1}


@pytest.mark.anyio
async def test_a_4xx_is_not_retried(sink: Sink) -> None:
    sink.statuses = [404]
    counters = await deliver(sink, [record(2, ROLLED_BACK)])
    assert len(sink.received) == 1
    assert counters.snapshot() == {("webhook", "rejected"): 1}


@pytest.mark.anyio
async def test_a_full_queue_drops_and_counts(sink: Sink) -> None:
    events = [record(i, REQUESTED) for i in range(1, 6)]
    counters = await deliver(sink, events, queue_size=2)
    assert len(sink.received) == 2
    assert counters.snapshot() == {("webhook", "delivered"): 2, ("webhook", "dropped"): 3}


def test_retry_delay_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base=1, cap=8, jitter=0.5)
    assert policy.delay(1, lambda: 0.5) == 1
    assert policy.delay(2, lambda: 0.0) == 1  # 2 s, minus half
    assert policy.delay(3, lambda: 1.0) == 6  # 4 s, plus half
    assert policy.delay(10, lambda: 0.5) == 8  # capped


CONFIG = """
[engine]
public_url = "https://glam.acme.internal/"

[[repository]]
url = "https://github.com/acme/lambdas.git"

[[repository.notify]]
kind = "slack"
url = "SLACK_WEBHOOK_URL"
events = ["rolled_back", "failed"]

[[repository.notify]]
kind = "webhook"
url = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:glam/hook-Ab12Cd"
"""


def test_configured_per_repository_by_reference() -> None:
    config = parse_config(CONFIG, Path("glam.toml"))
    slack, hook = routes_from(config)
    assert (slack.kind, slack.url.kind, slack.url.ref) == ("slack", "env", "SLACK_WEBHOOK_URL")
    assert slack.events == {"rolled_back", "failed"}
    assert slack.repository == config.repository[0].id
    assert (hook.url.kind, len(hook.events)) == ("secretsmanager", 6)
    assert config.engine.public_url == "https://glam.acme.internal"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            'url = "https://hooks.slack.com/services/T0/B0/x"', "is a reference", id="url"
        ),
        pytest.param('url = "X"\nevents = ["rollback"]', "'rollback' is not one of", id="event"),
    ],
)
def test_bad_notify_settings_are_refused(line: str, message: str) -> None:
    text = f"""
[[repository]]
url = "https://github.com/acme/lambdas.git"

[[repository.notify]]
kind = "slack"
{line}
"""
    with pytest.raises(ConfigFileError) as refused:
        parse_config(text, Path("glam.toml"))
    assert message in refused.value.one_line()
