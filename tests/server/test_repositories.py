"""Repositories added through Gitmoxi's API: an engine started with none is given one, which
its fleet watches beside the configuration's (deployed at once), across a restart; removing it
stops the watching and deletes nothing; the configuration's own repository cannot be added or
removed through the API; a token is named by reference and read as the configuration file's
are."""

from __future__ import annotations

import os

import anyio
import pytest

from engine.events.registry import REPOSITORIES_STREAM, RepositoryAdded, RepositoryRemoved
from engine.local import LocalAwsThread
from engine.local.clients import aws_client
from engine.tokens import TokenRef
from tests.builders import events_of
from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import finished, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
TOKEN_ENV = "GLAM_TEST_REPO_TOKEN"


async def _functions(local_aws: LocalAwsThread) -> list[str]:
    async with aws_client("lambda", local_aws.endpoint_url) as lam:
        return sorted(f["FunctionName"] for f in (await lam.list_functions())["Functions"])


async def test_a_repository_added_through_the_api_is_watched_across_a_restart(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    url = str(setup.repo.path)
    added = {"repo_url": url, "branches": ["main"], "access_token_arn": ""}
    async with serving(setup, repo="") as srv:
        assert await srv.get("/api/v1/repositories") == (200, [])
        before = await srv.engine.store.last_position()
        assert (await srv.post("/api/v1/repositories/add", added, token=None))[0] == 401
        assert (await srv.post("/api/v1/repositories/add", added, token="wrong"))[0] == 401
        assert await srv.engine.store.last_position() == before  # a 401 records nothing

        status, answer = await srv.post("/api/v1/repositories/add", {**added, "actor": "ci"})
        assert status == 200, answer
        assert (answer["repo_url"], answer["branches"]) == (url, ["main"])
        # The fleet watches it at once: its function is deployed with no restart.
        done = await srv.wait_for(finished(1))
        assert done.event.outcome == "succeeded"  # type: ignore[union-attr]
        status, repos = await srv.get("/api/v1/repositories")
        assert repos == [added]
        status, watched = await srv.get("/api/v1/repositories/watched")
        [branch] = watched["branches"]
        assert (branch["repository"], branch["branch"], branch["fetched"]) == (url, "main", True)
        log = await srv.log()
        [record] = [r for r in log if r.stream == REPOSITORIES_STREAM]
        assert isinstance(record.event, RepositoryAdded)
        assert (record.event.url, record.event.branches, record.meta.actor) == (
            url,
            ("main",),
            "ci",
        )
        # A configuration reloaded (SIGHUP) keeps watching what the API added.
        srv.engine.reconfigure(srv.engine.config)
        assert [(w.url, w.branch) for w in srv.engine.watching] == [(url, "main")]
        # Written to the repository, after the log said it is watched, before it is planned.
        assert record.position < min(r.position for r in log if r.stream.startswith("repo:"))

    write_function(setup.repo, setup.outputs, code="green", traffic=FAST)
    green = setup.repo.commit("green")
    async with serving(setup, repo="") as srv:
        # Restarted with no repository of its own: the log's is watched again, and deployed.
        done = await srv.wait_for(finished(1))
        assert (done.meta.commit, done.event.outcome) == (green, "succeeded")  # type: ignore[union-attr]
        assert (await srv.get("/api/v1/repositories"))[1] == [added]
        # Gitmoxi's deploy and sync find it through the fleet.
        status, answer = await srv.post(
            "/api/v1/commits/deploy", {"repo_url": url, "branch": "main"}
        )
        assert (status, answer["latest_commit_hash"]) == (200, green)

        status, answer = await srv.request("DELETE", f"/api/v1/repositories/delete?repo_url={url}")
        assert (status, answer["removed"]) == (200, True)
        assert (await srv.get("/api/v1/repositories"))[1] == []
        assert (await srv.post("/api/v1/sync", {"repository": url}))[0] == 404
        setup.repo.remove("apps/orders/orders_lambdadef.json")
        setup.repo.remove("apps/orders/orders_lambdadepdef.json")
        deleted = setup.repo.commit("orders deleted while no longer watched")
        at = await srv.engine.store.last_position()
        await anyio.sleep(1)  # five polls of 0.2 s, were it watched
        assert await srv.engine.store.last_position() == at
        again = await srv.request("DELETE", f"/api/v1/repositories/delete?repo_url={url}")
        assert again[0] == 404

    async with serving(setup, repo="") as srv:
        assert (await srv.get("/api/v1/repositories"))[1] == []
        await anyio.sleep(1)
        log = await srv.log()
        assert not [r for r in log if r.meta.commit == deleted]  # never seen, never planned
        assert [e.url for e in events_of(log, RepositoryRemoved)] == [url]
    assert await _functions(local_aws) == [NAME]  # removing a repository deletes nothing


async def test_the_configurations_repository_is_the_configurations(setup: Setup) -> None:
    """Adding or removing the repository the engine was started with is refused (409), an
    unknown one cannot be removed (404), a bad request is 400; none records anything."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    url = str(setup.repo.path)
    async with serving(setup) as srv:
        await srv.wait_for(finished(1))
        before = await srv.engine.store.last_position()
        assert (await srv.post("/api/v1/repositories/add", {"repo_url": url}))[0] == 409
        assert (await srv.request("DELETE", f"/api/v1/repositories/delete?repo_url={url}"))[
            0
        ] == 409
        gone = "/api/v1/repositories/delete?repo_url=https://example.com/none.git"
        assert (await srv.request("DELETE", gone))[0] == 404
        assert (await srv.request("DELETE", "/api/v1/repositories/delete"))[0] == 400
        for bad in (
            {},
            {"repo_url": "https://x-access-token:ghp_secret@github.com/acme/l.git"},
            {"repo_url": "https://github.com/acme/l.git", "branches": ["bad..name"]},
            {"repo_url": "https://github.com/acme/l.git", "access_token_arn": "not a name"},
            {"repo_url": "git@github.com:acme/l.git", "access_token_arn": "GITHUB_TOKEN"},
            {"repo_url": "https://github.com/acme/l.git", "branches": "main"},
        ):
            status, answer = await srv.post("/api/v1/repositories/add", bad)
            assert status == 400, (bad, answer)
            assert "ghp_secret" not in str(answer)
        assert await srv.engine.store.last_position() == before


async def test_an_added_repositorys_token_is_read_by_reference(setup: Setup) -> None:
    """The token is named, never given: the watch reads it from the environment variable at
    each fetch, as a configuration file's token (unset, the branch is unavailable and says
    which variable), and no answer or event carries its value."""
    url = "http://127.0.0.1:9/acme/lambdas.git"  # nothing listens: fetches fail
    body = {"repo_url": url, "branches": ["main"], "access_token_arn": TOKEN_ENV}
    os.environ.pop(TOKEN_ENV, None)
    async with serving(setup, repo="") as srv:
        status, answer = await srv.post("/api/v1/repositories/add", body)
        assert (status, answer["access_token_arn"]) == (200, TOKEN_ENV)
        [watch] = srv.engine.watching
        assert watch.token == TokenRef("env", TOKEN_ENV)
        with anyio.fail_after(30):
            while True:
                _, watched = await srv.get("/api/v1/repositories/watched")
                reason = watched["branches"][0]["unavailable"] or ""
                if TOKEN_ENV in reason:
                    break
                await anyio.sleep(0.1)
        assert f"environment variable {TOKEN_ENV} is empty" in reason
        os.environ[TOKEN_ENV] = "canary-token-Qx81"
        try:
            with anyio.fail_after(30):
                while True:
                    _, watched = await srv.get("/api/v1/repositories/watched")
                    reason = watched["branches"][0]["unavailable"] or ""
                    if reason and TOKEN_ENV not in reason:
                        break  # the token was read; the fetch itself failed
                    await anyio.sleep(0.1)
            assert (await srv.get("/api/v1/repositories"))[1][0]["access_token_arn"] == TOKEN_ENV
            log = await srv.log()
            assert "canary-token-Qx81" not in "".join(str(r) for r in log)
            assert "canary-token-Qx81" not in str(watched)
        finally:
            os.environ.pop(TOKEN_ENV, None)
