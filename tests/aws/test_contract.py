"""The LambdaApi / AlarmsApi contract, run against FakeAws and against AwsLambda/AwsAlarms on
a real moto server over HTTP: both must answer the same way to what the saga relies on."""

from __future__ import annotations

import pytest

from engine.aws.rules import code_sha256
from engine.errors import AwsConflict, AwsInvalid
from engine.ports import FunctionInfo

from .conftest import ACCOUNT, REGION, Target, code_zip

pytestmark = pytest.mark.anyio


async def wait_active(target: Target, name: str) -> FunctionInfo:
    """Poll like the saga does: Active and no update in progress."""
    for _ in range(50):
        info = await target.api.get_function(name)
        assert info is not None
        if info.state == "Active" and info.last_update_status != "InProgress":
            return info
    raise AssertionError(f"{name} never became Active")


async def test_missing_things_read_as_absent(target: Target) -> None:
    name = target.new_name()
    assert await target.api.get_function(name) is None
    assert await target.api.get_function(name, "1") is None
    assert await target.api.get_alias(name, "live") is None
    assert await target.api.list_versions(name) == []


async def test_create_then_read(target: Target) -> None:
    name = target.new_name()
    request = target.request(name)
    created = await target.api.create_function(request)
    assert created.name == name
    assert created.version == "$LATEST"
    assert created.arn.endswith(f":function:{name}")
    assert created.code_sha256 == code_sha256(request["Code"])
    info = await wait_active(target, name)
    assert info.configuration["Timeout"] == 3
    assert info.description == "test function"
    if target.kind == "fake":  # moto does not report a function's RevisionId
        assert info.revision_id


async def test_create_twice_is_a_conflict_that_does_not_clear(target: Target) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    with pytest.raises(AwsConflict) as caught:
        await target.api.create_function(target.request(name))
    assert caught.value.retryable is False


async def test_update_configuration_takes_a_full_definition(target: Target) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    before = await wait_active(target, name)
    updated = await target.api.update_function_configuration(
        name, target.request(name, Timeout=9, Description="second")
    )
    if target.kind == "fake":
        assert updated.revision_id != before.revision_id
    after = await wait_active(target, name)
    assert after.configuration["Timeout"] == 9
    assert after.description == "second"


async def test_publish_versions_and_list_them(target: Target) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    await wait_active(target, name)
    v1 = await target.api.publish_version(
        name, description="deployment d-1", code_sha256=None, revision_id=None
    )
    assert v1.version == "1"
    assert v1.description == "deployment d-1"
    code = {"ZipFile": code_zip("green")}
    updated = await target.api.update_function_code(name, code)
    assert updated.code_sha256 == code_sha256(code)
    latest = await wait_active(target, name)
    v2 = await target.api.publish_version(
        name,
        description="deployment d-2",
        code_sha256=latest.code_sha256,
        revision_id=latest.revision_id,
    )
    assert v2.version == "2"
    assert v2.code_sha256 == code_sha256(code)
    versions = await target.api.list_versions(name)
    assert [(v.version, v.description) for v in versions] == [
        ("1", "deployment d-1"),
        ("2", "deployment d-2"),
    ]
    two = await target.api.get_function(name, "2")
    assert two is not None
    assert two.version == "2"
    assert two.description == "deployment d-2"


async def test_alias_routing_and_clearing(target: Target) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    await wait_active(target, name)
    await target.api.publish_version(name, description="a", code_sha256=None, revision_id=None)
    await target.api.update_function_code(name, {"ZipFile": code_zip("green")})
    await wait_active(target, name)
    await target.api.publish_version(name, description="b", code_sha256=None, revision_id=None)

    created = await target.api.create_alias(name, "live", "1")
    assert created.function_version == "1"
    assert created.routing == {}
    assert created.arn.endswith(f":function:{name}:live")

    shifted = await target.api.update_alias(name, "live", "1", {"2": 0.2})
    assert shifted.routing == {"2": pytest.approx(0.2)}
    read = await target.api.get_alias(name, "live")
    assert read is not None
    assert read.function_version == "1"
    assert read.routing == {"2": pytest.approx(0.2)}

    promoted = await target.api.update_alias(name, "live", "2", None, revision_id=read.revision_id)
    assert promoted.function_version == "2"
    assert promoted.routing == {}
    final = await target.api.get_alias(name, "live")
    assert final is not None
    assert final.routing == {}


@pytest.mark.parametrize(
    ("version", "routing"),
    [
        pytest.param("$LATEST", None, id="latest-target"),
        pytest.param("1", {"$LATEST": 0.1}, id="latest-routed"),
        pytest.param("1", {"2": 1.5}, id="weight-above-one"),
        pytest.param("1", {"2": -0.1}, id="negative-weight"),
        pytest.param("1", {"2": 0.1, "3": 0.1}, id="two-additional"),
    ],
)
async def test_alias_invariants_are_refused(
    target: Target, version: str, routing: dict[str, float] | None
) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    await wait_active(target, name)
    await target.api.publish_version(name, description="a", code_sha256=None, revision_id=None)
    with pytest.raises(AwsInvalid):
        await target.api.create_alias(name, "live", version, routing)


async def test_deletes_are_idempotent(target: Target) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    await wait_active(target, name)
    await target.api.publish_version(name, description="a", code_sha256=None, revision_id=None)
    await target.api.delete_version(name, "1")
    assert await target.api.list_versions(name) == []
    await target.api.delete_version(name, "1")
    await target.api.delete_function(name)
    assert await target.api.get_function(name) is None
    await target.api.delete_function(name)


async def test_delete_latest_alone_is_refused(target: Target) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    with pytest.raises(AwsInvalid):
        await target.api.delete_version(name, "$LATEST")


async def test_alarm_states(target: Target) -> None:
    ok, firing = target.new_name(), target.new_name()
    await target.set_alarm(ok, "OK")
    await target.set_alarm(firing, "ALARM")
    # More than one DescribeAlarms batch of 100 names, most of them missing.
    names = [ok, *(f"missing-{i}" for i in range(150)), firing]
    states = await target.alarms.alarm_states(names)
    assert states == {ok: "OK", firing: "ALARM"}
    assert await target.alarms.alarm_states([]) == {}


@pytest.mark.integration
async def test_open_aws_builds_the_adapters(moto_url: str) -> None:
    """open_aws learns the account from STS and shares one limiter per account+region."""
    from engine.aws.ratelimit import LimiterRegistry
    from engine.aws.session import open_aws

    from .conftest import moto_config

    registry = LimiterRegistry()
    async with open_aws(moto_config(moto_url), registry) as aws:
        assert aws.account == "123456789012"
        assert aws.limiter is registry.get("123456789012", "us-east-1")
        assert await aws.lambda_api.get_function("does-not-exist") is None
        assert await aws.alarms.alarm_states(["nope"]) == {}


async def test_a_version_published_without_description_keeps_the_functions(
    target: Target,
) -> None:
    """PublishVersion with no Description: the version has the function's (the user's)."""
    name = target.new_name()
    await target.api.create_function(target.request(name, Description="the user's text"))
    await wait_active(target, name)
    version = await target.api.publish_version(name, code_sha256=None, revision_id=None)
    assert version.description == "the user's text"
    read = await target.api.get_function(name, version.version)
    assert read is not None
    assert read.description == "the user's text"


async def test_tags_are_read_with_the_function_and_set_and_removed(target: Target) -> None:
    """GetFunction answers the tags (any qualifier); TagResource and UntagResource change
    them on the function."""
    name = target.new_name()
    created = await target.api.create_function(target.request(name, Tags={"team": "a"}))
    await wait_active(target, name)
    read = await target.api.get_function(name)
    assert read is not None
    assert read.tags == {"team": "a"}
    await target.api.tag_function(created.arn, {"team": "b", "cost": "c1"})
    await target.api.untag_function(created.arn, ["cost"])
    again = await target.api.get_function(name)
    assert again is not None
    assert again.tags == {"team": "b"}


async def test_code_signing_is_read_put_and_deleted(target: Target) -> None:
    """The function's code-signing configuration, with its own calls."""
    name = target.new_name()
    await target.api.create_function(target.request(name))
    await wait_active(target, name)
    assert await target.api.code_signing_config(name) is None
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:code-signing-config:csc-0123456789abcdef0"
    await target.api.put_code_signing_config(name, arn)
    assert await target.api.code_signing_config(name) == arn
    await target.api.delete_code_signing_config(name)
    assert await target.api.code_signing_config(name) is None


async def test_delete_alias_is_idempotent(target: Target) -> None:
    name = target.new_name()
    await target.api.create_function(target.request(name))
    await wait_active(target, name)
    version = await target.api.publish_version(name, code_sha256=None, revision_id=None)
    await target.api.create_alias(name, "old", version.version)
    await target.api.delete_alias(name, "old")
    assert await target.api.get_alias(name, "old") is None
    await target.api.delete_alias(name, "old")
