"""Gitmoxi's API driven the way its CLI (gmctl) drives it, over real HTTP against a running
engine: list repositories, list commits, dry-run (rendering templates), deploy, and query
deployments by status with DynamoDB-style paging, the token in the endpoint URL as a
Gitmoxi client would carry it."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.runtime.support import NAME, PREFIX, Setup, write_function
from tests.server.support import API_TOKEN, Served, finished, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
OTHERS = ("inventory", "shipping", "payments")


class Gmctl:
    """What gmctl sends: JSON bodies and query strings to ``$GITMOXI_ENDPOINT_URL/api/v1``,
    no Authorization header of its own (the token rides in the endpoint URL)."""

    def __init__(self, srv: Served, http: aiohttp.ClientSession) -> None:
        host = srv.url.removeprefix("http://")
        self.base = f"http://gmctl:{API_TOKEN}@{host}/api/v1"
        self.http = http

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(method, self.base + path, **kwargs) as answer:
            assert answer.status == 200, (path, answer.status, await answer.text())
            return await answer.json()

    async def lambda_deployments(self, n: int, **filters: str) -> list[dict[str, Any]]:
        """``gmctl deployment lambda get``: query pages of ``page`` until ``n`` records or
        no ``last_evaluated_key``."""
        records: list[dict[str, Any]] = []
        body: dict[str, Any] = {**filters, "n": 2}
        while len(records) < n:
            answer = await self.call("POST", "/deployments/lambda/query", json=body)
            records += answer["deployments"]
            if not answer.get("last_evaluated_key"):
                break
            body["start_key"] = answer["last_evaluated_key"]
        return records[:n]


async def test_a_gitmoxi_ci_script_works_with_only_the_endpoint_changed(setup: Setup) -> None:
    write_function(setup.repo, setup.outputs, traffic=FAST)
    first = setup.repo.commit("add orders")
    repo_url = str(setup.repo.path)
    async with serving(setup, poll=3600.0) as srv, aiohttp.ClientSession() as http:
        await srv.wait_for(finished(1))
        gm = Gmctl(srv, http)

        repos = await gm.call("GET", "/repositories")
        assert repos == [{"repo_url": repo_url, "branches": ["main"], "access_token_arn": ""}]
        assert await gm.call("GET", f"/repositories?repo_url={repo_url}") == repos

        target = {"repo_url": repo_url, "branch": "main"}
        nothing = await gm.call("POST", "/commits/dryrun", json=target)
        assert nothing == {"deployment_artifacts_from_changed_files": {}}  # "No changes found"

        write_function(setup.repo, setup.outputs, code="green", traffic=FAST)
        for name in OTHERS:
            write_function(
                setup.repo, setup.outputs, traffic=FAST, name=name, prefix=f"apps/{name}/{name}"
            )
        second = setup.repo.commit("green orders and three more")
        before = await srv.engine.store.last_position()
        dry = await gm.call("POST", "/commits/dryrun", json={**target, "process_template": True})
        artifacts = dry["deployment_artifacts_from_changed_files"]
        assert (artifacts["latest_commit_hash"], artifacts["last_known_commit_hash"]) == (
            second,
            first,
        )
        changed = artifacts["lambda"]["lambda_relevant_files"]["added_or_modified"]
        assert set(changed) == {PREFIX, *(f"apps/{n}/{n}" for n in OTHERS)}
        assert {a["action"] for a in dry["plan"]["actions"]} == {"new_version", "create"}
        assert dry["plan"]["rejected"] == []
        assert await srv.engine.store.last_position() == before  # a dry run records nothing

        deployed = await gm.call("POST", "/commits/deploy", json={**target, "force": False})
        assert deployed["latest_commit_hash"] == second
        assert deployed["last_known_commit_hash"] == first
        assert set(deployed["lambda"]["lambda_relevant_files"]["added_or_modified"]) == set(changed)
        assert deployed["ecs"] == {"ecs_relevant_files": {}}
        await srv.wait_for(finished(5))

        commits = await gm.call("GET", f"/commits?repo_url={repo_url}&branch=main&n=1")
        [latest] = commits["commits"]
        assert (latest["commit_hash"], latest["status"]) == (second, "PROCESSED_SUCCESS")
        one = await gm.call("GET", f"/commits/{second}")
        assert one["commits"][0]["lambda_relevant_files"]["added_or_modified"][PREFIX]

        succeeded = await gm.lambda_deployments(10, status="PROCESSED_SUCCESS")
        assert len(succeeded) == 5  # paged two at a time
        assert len({d["id"] for d in succeeded}) == 5
        of_second = await gm.lambda_deployments(10, commit_hash=second, repo_url=repo_url)
        assert {d["function_name"] for d in of_second} == {NAME, *OTHERS}
        assert {d["status"] for d in of_second} == {"PROCESSED_SUCCESS"}
        assert await gm.lambda_deployments(10, status="PROCESSED_ERROR") == []
        assert len(await gm.lambda_deployments(3, status="PROCESSED_SUCCESS")) == 3
        record = next(d for d in of_second if d["function_name"] == NAME)
        assert record["file_prefix"] == PREFIX
        assert record["account_id"]
        assert record["region"] == setup.region
        assert any("finished succeeded" in line for line in record["status_details"])
        older = await gm.call("GET", f"/deployments/lambda?function_name={NAME}&n=10")
        assert [d["commit_hash"] for d in older["deployments"]] == [second, first]

        # A broken template: the dry run with process_template names it, nothing recorded.
        setup.repo.write(f"{PREFIX}_lambdadef.json", '{"FunctionName": "{{ missing }}"}')
        setup.repo.commit("broken")
        before = await srv.engine.store.last_position()
        dry = await gm.call("POST", "/commits/dryrun", json={**target, "process_template": True})
        [rejected] = dry["plan"]["rejected"]
        assert rejected["file"].startswith(PREFIX)
        assert await srv.engine.store.last_position() == before

        async with http.post(
            gm.base + "/commits/deploy", json={"repo_url": "https://example.com/x.git"}
        ) as answer:
            assert answer.status == 404
        async with http.post(
            f"{srv.url}/api/v1/commits/deploy", json=target
        ) as answer:  # no token in the URL
            assert answer.status == 401
        async with http.post(
            gm.base + "/deployments/lambda/query", json={"status": "DONE"}
        ) as answer:
            assert answer.status == 400
