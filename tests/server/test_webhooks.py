"""Push triggers over real HTTP: GitHub, GitLab and the generic signed form; good, bad,
missing and replayed signatures; unknown repositories, oversize bodies; and a push that
deploys a commit while the poll interval is an hour."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.events import RecordedEvent
from engine.events.repo import CommitObserved, CommitPlanned
from tests.runtime.support import Setup, write_function
from tests.server.support import Served, finished, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
SECRET = "hook-secret"


def github_push(setup: Setup, sha: str, *, branch: str = "main", url: str | None = None) -> bytes:
    repository = {
        "clone_url": url or str(setup.repo.path),
        "ssh_url": "git@example.com:acme/lambdas.git",
        "full_name": "acme/lambdas",
    }
    body = {"ref": f"refs/heads/{branch}", "before": "0" * 40, "after": sha}
    return json.dumps({**body, "repository": repository}).encode()


def signed(body: bytes, secret: str = SECRET, *, delivery: str | None = None) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
        "Content-Type": "application/json",
    }


def generic(
    body: dict[str, Any], *, stamp: float | None = None, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    data = json.dumps(body).encode()
    ts = str(int(stamp if stamp is not None else time.time()))
    signature = hmac.new(secret.encode(), ts.encode() + b"." + data, hashlib.sha256).hexdigest()
    return data, {
        "X-Glam-Timestamp": ts,
        "X-Glam-Delivery": str(uuid.uuid4()),
        "X-Glam-Signature-256": f"sha256={signature}",
        "Content-Type": "application/json",
    }


async def hook(srv: Served, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    return await srv.request("POST", path, data=body, headers=headers, token=None)


async def deliveries(srv: Served) -> dict[tuple[str, str], float]:
    status, text = await srv.get("/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == "glam_webhook_deliveries":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[(sample.labels["provider"], sample.labels["outcome"])] = sample.value
    return out


async def test_a_github_push_deploys_at_once_while_the_poll_is_an_hour(setup: Setup) -> None:
    """The engine fetched the branch at start and waits an hour for the next look; a signed
    push for the new commit makes it observe, plan and deploy it: the commit's events all
    come after the delivery, in order."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup, poll=3600.0) as srv:
        await srv.wait_for(finished(1))
        write_function(setup.repo, setup.outputs, code="green", traffic=FAST)
        sha = setup.repo.commit("green")
        before = await srv.engine.store.last_position()
        body = github_push(setup, sha)
        sent = time.monotonic()
        status, answer = await hook(srv, "/hooks/github", body, signed(body))
        assert status == 202, answer
        assert (answer["result"], answer["head"]) == ("fetching", sha)
        # Observed within a second of the delivery (the next poll is an hour away).
        while not any(_kind(r, sha) == "observed" for r in await srv.log() if r.position > before):
            assert time.monotonic() - sent < 1.0, "the push was not observed within a second"
            await anyio.sleep(0.02)
        await srv.wait_for(finished(2), within=30)
        after = [r for r in await srv.log() if r.position > before]
        order = [_kind(r, sha) for r in after if _kind(r, sha)]
        # Write-ahead: the request is durable before the plan that closes it.
        assert order[:3] == ["observed", "requested", "planned"]
        assert order[-1] == "finished"
        assert (await deliveries(srv))[("github", "accepted")] == 1


def _kind(record: RecordedEvent, sha: str) -> str | None:
    event = record.event
    if isinstance(event, CommitObserved) and event.sha == sha:
        return "observed"
    if isinstance(event, CommitPlanned) and event.sha == sha:
        return "planned"
    if record.meta.commit == sha and event.type == "DeploymentRequested":
        return "requested"
    if event.type == "DeploymentFinished":
        return "finished"
    return None


async def test_every_refusal_has_its_status_and_is_counted(setup: Setup) -> None:
    """Bad, missing and replayed signatures, unknown repositories, oversize and malformed
    bodies, other branches and events: each has its status and outcome in the metrics, and
    the engine goes on serving."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    sha = setup.repo.commit("add orders")
    async with serving(setup, poll=3600.0, server={"max_body": 4096}) as srv:
        await srv.wait_for(finished(1))
        body = github_push(setup, sha)
        good = signed(body)
        assert (await hook(srv, "/hooks/github", body, good))[0] == 202
        assert (await hook(srv, "/hooks/github", body, good))[0] == 409  # replayed
        wrong = signed(body, "not-the-secret")
        assert (await hook(srv, "/hooks/github", body, wrong))[0] == 401
        missing = {k: v for k, v in signed(body).items() if k != "X-Hub-Signature-256"}
        assert (await hook(srv, "/hooks/github", body, missing))[0] == 401
        tampered = body.replace(b"main", b"mainx")
        assert (await hook(srv, "/hooks/github", tampered, signed(body)))[0] == 401
        other = github_push(setup, sha, url="https://example.com/someone/else.git")
        assert (await hook(srv, "/hooks/github", other, signed(other)))[0] == 404
        dev = github_push(setup, sha, branch="dev")
        status, answer = await hook(srv, "/hooks/github", dev, signed(dev))
        assert status == 202
        assert answer["result"].startswith("ignored")
        big = github_push(setup, sha)[:-1] + b', "pad": "' + b"x" * 8000 + b'"}'
        assert (await hook(srv, "/hooks/github", big, signed(big)))[0] == 413
        junk = b"{not json"
        assert (await hook(srv, "/hooks/github", junk, signed(junk)))[0] == 400
        ping = json.dumps({"zen": "Keep it logically awesome."}).encode()
        headers = {**signed(ping), "X-GitHub-Event": "ping"}
        assert await hook(srv, "/hooks/github", ping, headers) == (200, {"result": "pong"})

        lab = {"object_kind": "push", "ref": "refs/heads/main", "after": sha}
        lab["project"] = {"git_http_url": str(setup.repo.path)}  # type: ignore[assignment]
        lab_body = json.dumps(lab).encode()
        lab_headers = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event-UUID": "u-1"}
        assert (await hook(srv, "/hooks/gitlab", lab_body, lab_headers))[0] == 202
        assert (await hook(srv, "/hooks/gitlab", lab_body, lab_headers))[0] == 409
        bad_lab = {"X-Gitlab-Token": "nope", "X-Gitlab-Event-UUID": "u-2"}
        assert (await hook(srv, "/hooks/gitlab", lab_body, bad_lab))[0] == 401
        assert (await hook(srv, "/hooks/gitlab", lab_body, {}))[0] == 401

        data, headers = generic({"repository": str(setup.repo.path), "branch": "main"})
        assert (await hook(srv, "/hooks/generic", data, headers))[0] == 202
        assert (await hook(srv, "/hooks/generic", data, headers))[0] == 409
        stale, stale_headers = generic(
            {"repository": str(setup.repo.path), "branch": "main"}, stamp=time.time() - 3600
        )
        assert (await hook(srv, "/hooks/generic", stale, stale_headers))[0] == 409
        forged, forged_headers = generic({"repository": "x"}, secret="guess")
        assert (await hook(srv, "/hooks/generic", forged, forged_headers))[0] == 401

        counted = await deliveries(srv)
        assert counted == {
            ("github", "accepted"): 2,  # the push, and the ping (answered)
            ("github", "replayed"): 1,
            ("github", "bad_signature"): 3,
            ("github", "unknown_repository"): 1,
            ("github", "ignored"): 1,
            ("github", "too_large"): 1,
            ("github", "malformed"): 1,
            ("gitlab", "accepted"): 1,
            ("gitlab", "replayed"): 1,
            ("gitlab", "bad_signature"): 2,
            ("generic", "accepted"): 1,
            ("generic", "replayed"): 2,  # a delivery id again, and a stale timestamp
            ("generic", "bad_signature"): 1,
        }
        assert (await srv.get("/healthz"))[0] == 200


async def test_without_a_secret_every_delivery_is_refused(setup: Setup) -> None:
    """A receiver with no secret configured trusts nothing: 401, whatever is sent."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    sha = setup.repo.commit("add orders")
    async with serving(setup, webhook_secret=None) as srv:
        body = github_push(setup, sha)
        status, answer = await hook(srv, "/hooks/github", body, signed(body))
        assert status == 401
        assert "no webhook secret" in answer["error"]
