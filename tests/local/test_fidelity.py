"""Each fidelity rule of the proxy, exercised with plain aiobotocore clients."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from engine.local import Fidelity, LocalAwsThread
from tests.local.conftest import FIDELITY, Clients, ManualClock, make_function, published

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    err = exc.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]


async def test_new_function_is_pending_then_active(clients: Clients, clock: ManualClock) -> None:
    """GetFunction shows Pending for pending_seconds, and PublishVersion meanwhile gets 409."""
    created = await clients.lambda_.create_function(
        FunctionName="fn",
        Role=await _role(clients),
        Runtime="python3.11",
        Handler="h.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
    )
    assert created["State"] == "Pending"
    got = await clients.lambda_.get_function(FunctionName="fn")
    assert got["Configuration"]["State"] == "Pending"
    with pytest.raises(ClientError) as exc:
        await clients.lambda_.publish_version(FunctionName="fn")
    assert code_of(exc) == (409, "ResourceConflictException")
    clock.advance(FIDELITY.pending_seconds)
    got = await clients.lambda_.get_function_configuration(FunctionName="fn")
    assert got["State"] == "Active"
    assert (await clients.lambda_.publish_version(FunctionName="fn"))["Version"] == "1"


async def test_update_in_progress_conflicts(clients: Clients, clock: ManualClock) -> None:
    """After an update, Update* and PublishVersion get 409 with AWS's message until it is done."""
    await make_function(clients)
    clock.advance(FIDELITY.pending_seconds)
    await clients.lambda_.update_function_configuration(FunctionName="fn", Timeout=9)
    got = await clients.lambda_.get_function(FunctionName="fn")
    assert got["Configuration"]["LastUpdateStatus"] == "InProgress"
    for call in (
        clients.lambda_.publish_version(FunctionName="fn"),
        clients.lambda_.update_function_code(FunctionName="fn", ZipFile=b"PK"),
    ):
        with pytest.raises(ClientError) as exc:
            await call
        assert code_of(exc) == (409, "ResourceConflictException")
        assert exc.value.response["Error"]["Message"] == (
            "The operation cannot be performed at this time. An update is in progress for "
            "resource: arn:aws:lambda:us-east-1:123456789012:function:fn"
        )
    clock.advance(FIDELITY.update_seconds)
    got = await clients.lambda_.get_function(FunctionName="fn")
    assert got["Configuration"]["LastUpdateStatus"] == "Successful"
    assert (await clients.lambda_.publish_version(FunctionName="fn"))["Version"] == "1"


@pytest.mark.parametrize(
    ("version", "routing"),
    [
        pytest.param("1", {"$LATEST": 0.1}, id="latest-in-routing"),
        pytest.param("$LATEST", {"2": 0.1}, id="latest-as-routed-primary"),
        pytest.param("1", {"2": 0.1, "3": 0.1}, id="two-additional-versions"),
        pytest.param("1", {"2": 1.5}, id="weight-above-one"),
        pytest.param("1", {"9": 0.1}, id="unpublished-routed-version"),
        pytest.param("9", {}, id="unpublished-primary"),
    ],
)
async def test_alias_routing_rules(
    clients: Clients, clock: ManualClock, version: str, routing: dict[str, float]
) -> None:
    """Alias routing AWS refuses is refused with 400 InvalidParameterValueException."""
    await published(clients, clock, versions=3)
    await clients.lambda_.create_alias(FunctionName="fn", Name="PROD", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        await clients.lambda_.update_alias(
            FunctionName="fn",
            Name="PROD",
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": routing},
        )
    assert code_of(exc) == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as exc:
        await clients.lambda_.create_alias(
            FunctionName="fn",
            Name="OTHER",
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": routing},
        )
    assert code_of(exc) == (400, "InvalidParameterValueException")
    alias = await clients.lambda_.get_alias(FunctionName="fn", Name="PROD")
    assert alias["FunctionVersion"] == "1"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")


async def test_routing_kept_by_update_is_still_checked(
    clients: Clients, clock: ManualClock
) -> None:
    """UpdateAlias to $LATEST without RoutingConfig keeps the routing AWS has: refused."""
    await published(clients, clock)
    await clients.lambda_.create_alias(
        FunctionName="fn",
        Name="PROD",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    with pytest.raises(ClientError) as exc:
        await clients.lambda_.update_alias(
            FunctionName="fn", Name="PROD", FunctionVersion="$LATEST"
        )
    assert code_of(exc) == (400, "InvalidParameterValueException")


async def test_referenced_version_delete_refused(
    clients: Clients, clock: ManualClock, aws: LocalAwsThread
) -> None:
    """Deleting a version the alias or its routing references gets 409; the journal says so."""
    await published(clients, clock, versions=3)
    await clients.lambda_.create_alias(
        FunctionName="fn",
        Name="PROD",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.2}},
    )
    for version in ("1", "2"):
        with pytest.raises(ClientError) as exc:
            await clients.lambda_.delete_function(FunctionName="fn", Qualifier=version)
        assert code_of(exc) == (409, "ResourceConflictException")
    await clients.lambda_.delete_function(FunctionName="fn", Qualifier="3")
    deletes = aws.journal.calls("DeleteFunction")
    assert [(e.qualifier, e.status, e.referenced_by) for e in deletes] == [
        ("1", 409, ("PROD",)),
        ("2", 409, ("PROD",)),
        ("3", 204, ()),
    ]
    assert len(aws.journal.referenced_version_deletes()) == 2
    with pytest.raises(AssertionError, match="referenced by PROD"):
        aws.journal.check_invariants()


async def test_duplicate_event_source_mapping(clients: Clients, clock: ManualClock) -> None:
    """A second mapping of the same queue to the same function + qualifier gets 409, in any
    name form; another qualifier is a different mapping."""
    await published(clients, clock, versions=1)
    await clients.lambda_.create_alias(FunctionName="fn", Name="PROD", FunctionVersion="1")
    await clients.lambda_.create_alias(FunctionName="fn", Name="TEST", FunctionVersion="1")
    queue = await clients.sqs.create_queue(QueueName="q")
    arn = (
        await clients.sqs.get_queue_attributes(
            QueueUrl=queue["QueueUrl"], AttributeNames=["QueueArn"]
        )
    )["Attributes"]["QueueArn"]
    first = await clients.lambda_.create_event_source_mapping(
        EventSourceArn=arn, FunctionName="fn:PROD"
    )
    full = "arn:aws:lambda:us-east-1:123456789012:function:fn:PROD"
    for name in ("fn:PROD", full):
        with pytest.raises(ClientError) as exc:
            await clients.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
        assert code_of(exc) == (409, "ResourceConflictException")
        assert first["UUID"] in exc.value.response["Error"]["Message"]
    await clients.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="fn:TEST")
    await clients.lambda_.delete_event_source_mapping(UUID=first["UUID"])
    await clients.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName=full)


async def test_control_plane_quota(clients: Clients, aws: LocalAwsThread) -> None:
    """Above 15 requests/s the control plane answers 429 with Retry-After; GetFunction has a
    separate 100/s budget; the journal's rate check catches the excess."""
    await make_function(clients)
    # CreateFunction took one of the 15.
    for _ in range(14):
        await clients.lambda_.list_aliases(FunctionName="fn")
    for _ in range(5):
        with pytest.raises(ClientError) as exc:
            await clients.lambda_.list_aliases(FunctionName="fn")
        assert code_of(exc) == (429, "TooManyRequestsException")
        assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    for _ in range(20):
        await clients.lambda_.get_function(FunctionName="fn")
    assert aws.journal.max_rate("control") == 20
    with pytest.raises(AssertionError, match="20 control calls"):
        aws.journal.check_invariants()


async def test_no_fidelity_is_plain_moto(clients: Clients, aws: LocalAwsThread) -> None:
    """With fidelity off, moto's permissive behaviour shows through."""
    aws.set_fidelity(Fidelity.off())
    await make_function(clients)
    assert (await clients.lambda_.publish_version(FunctionName="fn"))["Version"] == "1"
    await clients.lambda_.create_alias(
        FunctionName="fn",
        Name="PROD",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"$LATEST": 0.5}},
    )
    for _ in range(20):
        await clients.lambda_.list_aliases(FunctionName="fn")


async def _role(clients: Clients) -> str:
    role = await clients.iam.create_role(RoleName="exec", AssumeRolePolicyDocument="{}")
    return str(role["Role"]["Arn"])


async def test_version_numbers_are_never_reused(clients: Clients, clock: ManualClock) -> None:
    """After a version is deleted the next publish gets a new number, as in real Lambda (moto
    alone would hand out the deleted number again)."""
    await published(clients, clock, versions=2)
    await clients.lambda_.delete_function(FunctionName="fn", Qualifier="1")
    await clients.lambda_.update_function_configuration(FunctionName="fn", Description="again")
    clock.advance(FIDELITY.update_seconds)
    answer = await clients.lambda_.publish_version(FunctionName="fn")
    assert answer["Version"] == "3"
    listed = await clients.lambda_.list_versions_by_function(FunctionName="fn")
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "2", "3"]
