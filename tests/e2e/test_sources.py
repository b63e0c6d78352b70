"""Each event source kind through commits and the engine: add, change, re-run, remove.

``tests/sources`` covers the adapter alone; here the same rules are reached the way a user
reaches them, by committing ``_lambdaeventsourcedef.json`` and running the engine on the
embedded AWS, and the result is read back by listing AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from engine.events.function import EventSourceChanged
from engine.local import LocalAwsThread
from engine.local.clients import aws_client
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner
from tests.builders import events_of
from tests.e2e.support import SOURCE_MUTATIONS, AwsState
from tests.runtime.support import NAME, PREFIX, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ALIAS = "live"  # what tests.runtime.support.write_function deploys to
SOURCES_FILE = f"{PREFIX}_lambdaeventsourcedef.json"
QUICK = {"type": "ALL_AT_ONCE", "waitInterval": 1}


@dataclass
class Account:
    """Two of everything a source can point at: the demo account's and one more of each."""

    queues: tuple[str, str]
    target_groups: tuple[str, str]
    api_id: str
    route_id: str
    alias_arn: str


@pytest.fixture
async def account(setup: Setup) -> Account:
    value = {k: v["value"] for k, v in setup.outputs.items()}
    async with (
        aws_client("sqs", setup.endpoint_url, region=setup.region, max_attempts=10) as sqs,
        aws_client("elbv2", setup.endpoint_url, region=setup.region, max_attempts=10) as elbv2,
    ):
        queue = await sqs.create_queue(QueueName="e2e-second")
        queue_arn = (
            await sqs.get_queue_attributes(QueueUrl=queue["QueueUrl"], AttributeNames=["QueueArn"])
        )["Attributes"]["QueueArn"]
        group = await elbv2.create_target_group(Name="e2e-second", TargetType="lambda")
    account_id = value["sqs_queue_arn"].split(":")[4]
    return Account(
        queues=(value["sqs_queue_arn"], queue_arn),
        target_groups=(value["target_group_arn"], group["TargetGroups"][0]["TargetGroupArn"]),
        api_id=value["api_id"],
        route_id=value["route_id"],
        alias_arn=f"arn:aws:lambda:{setup.region}:{account_id}:function:{NAME}:{ALIAS}",
    )


async def listing(aws: AwsState, account: Account) -> dict[str, Any]:
    """What AWS holds for the function's sources, found by listing."""
    return {
        "mappings": [
            (m["UUID"], m["EventSourceArn"], m["BatchSize"])
            for queue in account.queues
            for m in await aws.mappings(queue)
        ],
        "on_alias": [m["UUID"] for m in await aws.mappings_of(f"{NAME}:{ALIAS}")],
        "targets": [await aws.targets(group) for group in account.target_groups],
        "statements": [
            (s["Principal"]["Service"], str(s.get("Condition")))
            for s in await aws.statements(NAME, ALIAS)
        ],
        "integrations": [
            (i["IntegrationId"], i["IntegrationType"], i["IntegrationUri"])
            for i in await aws.integrations(account.api_id)
        ],
        "route": await aws.route_target(account.api_id, account.route_id),
    }


def pull(queue: str, **options: Any) -> dict[str, Any]:
    # An unqualified FunctionName, as real repositories write it: glam puts it on the alias.
    request = {"EventSourceArn": queue, "FunctionName": NAME, **options}
    return {"PullEventSources": {"EventSourceMapping": request}}


def push(*sources: dict[str, Any]) -> dict[str, Any]:
    return {"PushEventSources": list(sources)}


def elb(group: str) -> dict[str, Any]:
    return {"Service": "elasticloadbalancing.amazonaws.com", "TargetGroupArn": group}


def api(account: Account, **more: Any) -> dict[str, Any]:
    return {
        "Service": "apigateway.amazonaws.com",
        "ApiId": account.api_id,
        "RouteId": account.route_id,
        **more,
    }


def sources(pull: dict[str, Any], *push: dict[str, Any]) -> dict[str, Any]:
    # An unqualified FunctionName, as real repositories write it: glam puts it on the alias.
    return {
        "PullEventSources": {"EventSourceMapping": {"FunctionName": NAME, **pull}},
        "PushEventSources": list(push),
    }


def grants(state: dict[str, Any]) -> dict[str, str]:
    """principal -> condition of each statement; a duplicate principal fails the test."""
    statements: list[tuple[str, str]] = state["statements"]
    found = dict(statements)
    assert len(found) == len(statements), statements
    return found


async def test_every_source_kind_through_the_engine(
    setup: Setup, aws: AwsState, local_aws: LocalAwsThread, account: Account
) -> None:
    """Add, change, re-run, roll back and remove an SQS mapping, an ALB target group and an
    API Gateway route, one commit and one engine run each, checking AWS by listing it."""
    q0, _ = account.queues
    tg0, tg1 = account.target_groups
    elb_service, api_service = "elasticloadbalancing.amazonaws.com", "apigateway.amazonaws.com"

    # -- add: each source on the alias, once -----------------------------------------------------
    write_function(setup.repo, setup.outputs, traffic=QUICK)
    first = sources({"EventSourceArn": q0, "BatchSize": 5}, elb(tg0), api(account))
    setup.repo.write(SOURCES_FILE, first)
    setup.repo.commit("orders with three sources")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    added = await listing(aws, account)
    [(uuid, arn, size)] = added["mappings"]
    assert (arn, size) == (q0, 5)
    assert added["on_alias"] == [uuid]
    assert added["targets"] == [[account.alias_arn], []]
    [(integration, kind, uri)] = added["integrations"]
    assert (kind, uri) == ("AWS_PROXY", account.alias_arn)
    assert added["route"] == f"integrations/{integration}"
    # One permission per push source, scoped to it; none for the pull source.
    permissions = grants(added)
    assert permissions.keys() == {elb_service, api_service}
    assert tg0 in permissions[elb_service]
    assert f":{account.api_id}/*" in permissions[api_service]

    # -- change: batch size in place, another target group, a stage-variable URI ---------------
    second = sources(
        {"EventSourceArn": q0, "BatchSize": 7},
        elb(tg1),
        # The misspelling real repositories use names the stage variable too.
        api(account, AlaisStageVariableName="lambdaAlias"),
    )
    setup.repo.write(SOURCES_FILE, second)
    setup.repo.commit("orders: every source changes")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    changed = await listing(aws, account)
    assert changed["mappings"] == [(uuid, q0, 7)]  # the same mapping, not a second one
    assert changed["on_alias"] == [uuid]
    assert changed["targets"] == [[], [account.alias_arn]]
    [(integration, _, uri)] = changed["integrations"]  # still one, whatever its id
    assert uri == f"{account.alias_arn.rsplit(':', 1)[0]}:${{stageVariables.lambdaAlias}}"
    assert changed["route"] == f"integrations/{integration}"
    permissions = grants(changed)
    assert permissions.keys() == {elb_service, api_service}
    assert tg1 in permissions[elb_service]
    assert tg0 not in permissions[elb_service]

    # -- re-run with nothing new: no deployment, no source call, the same AWS ------------------
    local_aws.journal.clear()
    again = await setup.run_once()
    assert again.finished == []
    assert not [e.operation for e in local_aws.journal if e.operation in SOURCE_MUTATIONS]
    assert await listing(aws, account) == changed

    # -- a rollback leaves every source on the alias ---------------------------------------------
    write_function(
        setup.repo, setup.outputs, code="green", traffic=QUICK, alarms=("no-such-alarm",)
    )
    setup.repo.commit("orders: green, watched by an alarm nobody made")
    local_aws.journal.clear()
    assert outcomes(await setup.run_once()) == ["rolled_back"]
    assert not [e.operation for e in local_aws.journal if e.operation in SOURCE_MUTATIONS]
    assert await listing(aws, account) == changed

    # -- remove: nothing left behind -------------------------------------------------------------
    write_function(setup.repo, setup.outputs, traffic=QUICK)
    setup.repo.remove(SOURCES_FILE)
    setup.repo.commit("orders: no sources")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    removed = await listing(aws, account)
    assert removed["mappings"] == []
    assert removed["on_alias"] == []
    assert removed["targets"] == [[], []]
    assert removed["integrations"] == []
    assert removed["statements"] == []
    local_aws.journal.check_invariants()

    # Every change is an event; the functions view ends with no sources.
    changes = events_of(await setup.events(), EventSourceChanged)
    assert [(e.kind, e.change) for e in changes] == [
        ("mapping", "attached"),
        ("elb", "attached"),
        ("apigateway", "attached"),
        ("mapping", "updated"),
        ("elb", "attached"),  # the new group first, so the alias is never unreachable
        ("apigateway", "updated"),
        ("elb", "detached"),
        ("mapping", "detached"),
        ("elb", "detached"),
        ("apigateway", "detached"),
    ]
    async with SqliteEventStore(setup.db, readonly=True) as store:
        views = await ProjectionRunner(store).load()
    [row] = views.functions.values()
    assert row.event_sources == ()
