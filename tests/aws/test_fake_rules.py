"""AWS rules that FakeAws keeps and moto does not: states, conflicts, guards, faults."""

from __future__ import annotations

import pytest

from engine.errors import AwsAmbiguous, AwsConflict, AwsInvalid, AwsThrottled
from engine.testing.aws import FakeAws

from .conftest import code_zip

pytestmark = pytest.mark.anyio
ROLE = "arn:aws:iam::123456789012:role/r"


def request(name: str, body: str = "blue") -> dict[str, object]:
    return {
        "FunctionName": name,
        "Role": ROLE,
        "Runtime": "python3.12",
        "Handler": "index.handler",
        "Code": {"ZipFile": code_zip(body)},
    }


async def active(fake: FakeAws, name: str, versions: int = 0) -> None:
    await fake.create_function(request(name))
    while (info := await fake.get_function(name)) and info.state != "Active":
        pass
    for i in range(versions):
        if i:
            await fake.update_function_code(name, {"ZipFile": code_zip(f"v{i}")})
            await fake.get_function(name)
        await fake.publish_version(
            name, description=f"v{i + 1}", code_sha256=None, revision_id=None
        )


async def test_pending_for_the_configured_polls_and_conflicts_meanwhile() -> None:
    """A new function is Pending for N polls, and updates during it are retryable conflicts."""
    fake = FakeAws(pending_polls=3)
    created = await fake.create_function(request("f"))
    assert created.state == "Pending"
    with pytest.raises(AwsConflict) as caught:
        await fake.update_function_configuration("f", {"Timeout": 5})
    assert caught.value.retryable is True
    infos = [await fake.get_function("f") for _ in range(3)]
    assert [info.state if info else None for info in infos] == ["Pending", "Pending", "Active"]


async def test_update_in_progress_blocks_publish_until_polled() -> None:
    fake = FakeAws(update_polls=2)
    await active(fake, "f")
    updated = await fake.update_function_code("f", {"ZipFile": code_zip("green")})
    assert updated.last_update_status == "InProgress"
    with pytest.raises(AwsConflict):
        await fake.publish_version("f", description="d", code_sha256=None, revision_id=None)
    await fake.get_function("f")
    info = await fake.get_function("f")
    assert info is not None
    assert info.last_update_status == "Successful"
    version = await fake.publish_version(
        "f", description="d", code_sha256=info.code_sha256, revision_id=info.revision_id
    )
    assert version.version == "1"


async def test_revision_and_code_guards() -> None:
    fake = FakeAws()
    await active(fake, "f")
    info = await fake.get_function("f")
    assert info is not None
    with pytest.raises(AwsConflict) as stale:
        await fake.publish_version("f", description="d", code_sha256=None, revision_id="old")
    assert stale.value.code == "PreconditionFailedException"
    assert stale.value.retryable is False
    with pytest.raises(AwsInvalid):
        await fake.publish_version("f", description="d", code_sha256="other", revision_id=None)


async def test_publishing_unchanged_code_returns_the_same_version() -> None:
    fake = FakeAws()
    await active(fake, "f", versions=1)
    again = await fake.publish_version("f", description="x", code_sha256=None, revision_id=None)
    assert again.version == "1"
    assert [v.version for v in await fake.list_versions("f")] == ["1"]


async def test_referenced_versions_cannot_be_deleted() -> None:
    fake = FakeAws()
    await active(fake, "f", versions=3)
    await fake.create_alias("f", "live", "1", {"2": 0.5})
    for version in ("1", "2"):
        with pytest.raises(AwsConflict) as caught:
            await fake.delete_version("f", version)
        assert caught.value.retryable is False
    await fake.delete_version("f", "3")
    assert [v.version for v in await fake.list_versions("f")] == ["1", "2"]


async def test_alias_to_unknown_version_is_invalid() -> None:
    fake = FakeAws()
    await active(fake, "f", versions=1)
    with pytest.raises(AwsInvalid):
        await fake.create_alias("f", "live", "7")
    await fake.create_alias("f", "live", "1")
    with pytest.raises(AwsInvalid):
        await fake.update_alias("f", "live", "1", {"9": 0.1})


async def test_fail_next_raises_without_applying() -> None:
    fake = FakeAws()
    await active(fake, "f", versions=2)
    await fake.create_alias("f", "live", "1")
    fake.fail_next("UpdateAlias", AwsThrottled("slow down", operation="UpdateAlias"))
    with pytest.raises(AwsThrottled):
        await fake.update_alias("f", "live", "2", None)
    alias = await fake.get_alias("f", "live")
    assert alias is not None
    assert alias.function_version == "1"
    await fake.update_alias("f", "live", "2", None)
    assert [a["FunctionVersion"] for a in fake.calls("UpdateAlias")] == ["2", "2"]


async def test_apply_then_fail_applies_and_reports_ambiguous() -> None:
    fake = FakeAws()
    await active(fake, "f")
    fake.apply_then_fail("PublishVersion")
    with pytest.raises(AwsAmbiguous):
        await fake.publish_version("f", description="d-1", code_sha256=None, revision_id=None)
    assert [(v.version, v.description) for v in await fake.list_versions("f")] == [("1", "d-1")]


async def test_activation_can_fail() -> None:
    fake = FakeAws(pending_polls=1)
    await fake.create_function(request("f"))
    fake.fail_activation("f", "bad handler")
    info = await fake.get_function("f")
    assert info is not None
    assert info.state == "Failed"
    assert info.state_reason == "bad handler"


async def test_journal_records_calls_in_order() -> None:
    fake = FakeAws()
    await active(fake, "f", versions=1)
    ops = [op for op, _ in fake.journal]
    assert ops[0] == "CreateFunction"
    assert ops[-1] == "PublishVersion"
    assert "GetFunction" in ops


def test_alarm_states_are_checked() -> None:
    with pytest.raises(ValueError, match="alarm state"):
        FakeAws().set_alarm("a", "RED")
