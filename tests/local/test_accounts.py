"""Many accounts on one embedded AWS: STS AssumeRole into another account, calls acting
there, the journal naming each call's account, and the fidelity rules and quota kept per
account and region."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from botocore.exceptions import ClientError

from engine.local import LocalAwsThread
from engine.local.account import (
    ADMIN_ROLE,
    ALARM_NAMES,
    DEPLOY_ROLE,
    build_account,
    build_target_role,
    set_alarm_state,
)
from engine.local.clients import assume_role, aws_client
from tests.local.conftest import FIDELITY, Clients, ManualClock, make_function, open_clients

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DEFAULT = "123456789012"
OTHER = "111111111111"


async def _other(stack: AsyncExitStack, aws: LocalAwsThread) -> Clients:
    """Clients acting in OTHER, with credentials from AssumeRole through the proxy."""
    creds = await assume_role(aws.endpoint_url, f"arn:aws:iam::{OTHER}:role/{ADMIN_ROLE}")
    return await open_clients(stack, aws.endpoint_url, creds)


async def test_assume_role_acts_in_the_other_account(
    aws: LocalAwsThread, clients: Clients, clock: ManualClock
) -> None:
    """Credentials from AssumeRole into another account's role create a function in that
    account only; the journal records each call's account."""
    async with AsyncExitStack() as stack:
        other = await _other(stack, aws)
        assert (await other.sts.get_caller_identity())["Account"] == OTHER
        role = await make_function(other)
        assert role.startswith(f"arn:aws:iam::{OTHER}:role/")
        got = await other.lambda_.get_function(FunctionName="fn")
        assert got["Configuration"]["FunctionArn"] == (
            f"arn:aws:lambda:us-east-1:{OTHER}:function:fn"
        )
        assert (await clients.lambda_.list_functions())["Functions"] == []
    (assume,) = aws.journal.calls("AssumeRole")
    assert (assume.account, assume.service) == (DEFAULT, "sts")
    (create,) = aws.journal.calls("CreateFunction")
    assert (create.account, create.function) == (OTHER, "fn")
    assert [e.account for e in aws.journal.calls("ListFunctions")] == [DEFAULT]
    assert {e.account for e in aws.journal.calls(account=OTHER)} == {OTHER}
    assert len(aws.journal.calls(account=OTHER)) == len(aws.journal) - 2


async def test_lifecycle_is_kept_per_account(
    aws: LocalAwsThread, clients: Clients, clock: ManualClock
) -> None:
    """The same function name in two accounts has two lifecycles: a new one in the other
    account is Pending while the first stays Active, and the 409 names its own account."""
    await make_function(clients)
    clock.advance(FIDELITY.pending_seconds)
    async with AsyncExitStack() as stack:
        other = await _other(stack, aws)
        await make_function(other)
        assert (await other.lambda_.get_function(FunctionName="fn"))["Configuration"][
            "State"
        ] == "Pending"
        got = await clients.lambda_.get_function(FunctionName="fn")
        assert got["Configuration"]["State"] == "Active"
        assert (await clients.lambda_.publish_version(FunctionName="fn"))["Version"] == "1"
        clock.advance(FIDELITY.pending_seconds)
        await other.lambda_.update_function_configuration(FunctionName="fn", Timeout=9)
        with pytest.raises(ClientError) as exc:
            await other.lambda_.publish_version(FunctionName="fn")
        assert exc.value.response["Error"]["Message"].endswith(
            f"arn:aws:lambda:us-east-1:{OTHER}:function:fn"
        )
        await clients.lambda_.update_function_configuration(FunctionName="fn", Timeout=8)


async def test_quota_is_kept_per_account(
    aws: LocalAwsThread, clients: Clients, clock: ManualClock
) -> None:
    """Each account has its own 15 requests/s: 15 in each pass in the same second, the 16th
    in one is refused; the invariant check holds per account, the total is 30."""
    async with AsyncExitStack() as stack:
        other = await _other(stack, aws)
        for _ in range(15):
            await clients.lambda_.list_functions()
            await other.lambda_.list_functions()
        with pytest.raises(ClientError, match="TooManyRequestsException"):
            await other.lambda_.list_functions()
    assert aws.journal.max_rate("control", account=DEFAULT) == 15
    assert aws.journal.max_rate("control", account=OTHER) == 16
    assert aws.journal.max_rate("control") == 31
    with pytest.raises(AssertionError, match=f"16 control calls within 1 s in {OTHER}"):
        aws.journal.check_invariants()


async def test_invariants_name_the_account(
    aws: LocalAwsThread, clients: Clients, clock: ManualClock
) -> None:
    """An attempt to delete a referenced version in the other account is refused there and
    the invariant check names that account."""
    async with AsyncExitStack() as stack:
        other = await _other(stack, aws)
        await make_function(other)
        clock.advance(FIDELITY.pending_seconds)
        await other.lambda_.publish_version(FunctionName="fn")
        await other.lambda_.create_alias(FunctionName="fn", Name="live", FunctionVersion="1")
        with pytest.raises(ClientError, match="ResourceConflictException"):
            await other.lambda_.delete_function(FunctionName="fn", Qualifier="1")
        # The same name in the default account has no alias: nothing referenced there.
        await make_function(clients)
        clock.advance(FIDELITY.pending_seconds)
        await clients.lambda_.publish_version(FunctionName="fn")
        await clients.lambda_.delete_function(FunctionName="fn", Qualifier="1")
    deletes = aws.journal.calls("DeleteFunction")
    assert [(e.account, e.status, e.referenced_by) for e in deletes] == [
        (OTHER, 409, ("live",)),
        (DEFAULT, 204, ()),
    ]
    with pytest.raises(AssertionError, match=f"in account {OTHER}"):
        aws.journal.check_invariants()


async def test_target_role_and_second_account(aws: LocalAwsThread, clock: ManualClock) -> None:
    """The builder makes a second account's deployment role, trusting the engine's account,
    and that account's demo resources; the engine's credentials assume the role and deploy
    there with the second account's execution role, bucket and alarms."""
    url = aws.endpoint_url
    arn = await build_target_role(url, OTHER)
    assert arn == f"arn:aws:iam::{OTHER}:role/{DEPLOY_ROLE}"
    outputs = await build_account(url, account=OTHER)
    role_arn = outputs["lambda_exec_role_arn"]["value"]
    assert role_arn.startswith(f"arn:aws:iam::{OTHER}:role/")
    creds = await assume_role(url, arn, session_name="engine")
    await set_alarm_state(url, ALARM_NAMES[0], credentials=creds)
    async with (
        aws_client("iam", url, credentials=creds) as iam,
        aws_client("lambda", url, credentials=creds) as lam,
        aws_client("cloudwatch", url, credentials=creds) as cw,
        aws_client("cloudwatch", url) as cw_default,
    ):
        trust = (await iam.get_role(RoleName=DEPLOY_ROLE))["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{DEFAULT}:root"}
        await lam.create_function(
            FunctionName="orders",
            Role=role_arn,
            Runtime="python3.11",
            Handler="test_lambda_function.lambda_handler",
            Code={
                "S3Bucket": outputs["s3_bucket_name"]["value"],
                "S3Key": outputs["s3_object_blue_key"]["value"],
            },
        )
        alarms = (await cw.describe_alarms(AlarmNames=list(ALARM_NAMES)))["MetricAlarms"]
        assert {a["AlarmName"]: a["StateValue"] for a in alarms}[ALARM_NAMES[0]] == "ALARM"
        assert (await cw_default.describe_alarms())["MetricAlarms"] == []
    (create,) = aws.journal.calls("CreateFunction")
    assert create.account == OTHER
    assert aws.journal.calls("CreateRole", account=DEFAULT) == []


async def test_account_header_places_the_call(aws: LocalAwsThread) -> None:
    """moto's own account header (``x-moto-account-id``) is honoured and journaled."""
    async with aws_client("sqs", aws.endpoint_url) as sqs:
        sqs.meta.events.register(
            "before-send.sqs.CreateQueue",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", OTHER),
        )
        url = (await sqs.create_queue(QueueName="q"))["QueueUrl"]
    assert OTHER in url
    (entry,) = aws.journal.calls("CreateQueue")
    assert entry.account == OTHER
