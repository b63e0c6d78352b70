"""Failpoints: parsed strictly, fired at the n-th hit, placed around mutations only."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.runtime.failpoints import Failpoints, parse
from engine.testing.aws import FakeAws

pytestmark = pytest.mark.anyio


class Killed(Exception):
    pass


def _kill() -> None:
    raise Killed


def test_parse_reads_points_and_counts() -> None:
    """A spec lists points with an optional occurrence; whitespace and empties are ignored."""
    assert parse(" publish_version:after_call, update_alias:before_call@3 ,") == {
        "publish_version:after_call": 1,
        "update_alias:before_call": 3,
    }
    assert parse("") == {}


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("publish:after_call", id="unknown-operation"),
        pytest.param("publish_version:during", id="unknown-moment"),
        pytest.param("publish_version:after_call@0", id="zero-count"),
        pytest.param("publish_version:after_call@x", id="bad-count"),
    ],
)
def test_parse_refuses_a_typo(spec: str) -> None:
    """A misspelt point fails loudly instead of silently testing nothing."""
    with pytest.raises(ConfigError):
        parse(spec)


def test_inactive_without_the_variable() -> None:
    """With no point armed the ports are returned unwrapped."""
    api = FakeAws()
    assert Failpoints({}).guard(api) is api


async def test_fires_after_the_call_at_the_nth_hit() -> None:
    """``after_call`` dies once the mutation happened; ``@2`` spares the first hit."""
    api = FakeAws()
    fp = Failpoints({"create_alias:after_call": 2}, kill=_kill)
    guarded = fp.guard(api)
    assert guarded is not api
    await guarded.create_function(
        {
            "FunctionName": "f",
            "Role": "r",
            "Handler": "h",
            "Runtime": "python3.12",
            "Code": {"S3Bucket": "b", "S3Key": "k.zip"},
        }
    )
    for _ in range(3):
        await guarded.get_function("f")  # reads pass through untouched
    version = await guarded.publish_version("f", description="", code_sha256=None, revision_id=None)
    await guarded.create_alias("f", "a", version.version)
    with pytest.raises(Killed):
        await guarded.create_alias("f", "b", version.version)
    # The call itself happened before the point fired.
    assert await guarded.get_alias("f", "b") is not None


async def test_fires_before_the_call() -> None:
    """``before_call`` dies with the call not made."""
    fp = Failpoints({"create_function:before_call": 1}, kill=_kill)
    guarded = fp.guard(FakeAws())
    with pytest.raises(Killed):
        await guarded.create_function({"FunctionName": "f"})
    assert await guarded.get_function("f") is None
