"""Repository tokens by reference, read at use time (engine.tokens), on an in-memory
``SecretsApi``: a plain or one-key JSON secret, a rotation seen once the short cache expires,
and errors that name the reference, never a value."""

from __future__ import annotations

import json

import pytest

from engine.errors import AwsError, SourceError, SourceUnreachable
from engine.tokens import TokenResolver, parse_token_ref

pytestmark = pytest.mark.anyio

SECRET = parse_token_ref("arn:aws:secretsmanager:eu-west-1:111111111111:secret:glam/gh-Ab12Cd")
PARAMETER = parse_token_ref("arn:aws:ssm:eu-west-1:111111111111:parameter/glam/gh")
CANARY = "ghp_canary_0f9e8d"


class Secrets:
    """Secrets Manager and SSM in memory; ``calls`` counts the reads; ``failing`` makes
    every read fail with it."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0
        self.failing: AwsError | None = None

    async def secret_string(self, arn: str, region: str) -> str:
        return self._read(arn, region)

    async def parameter_value(self, arn: str, region: str) -> str:
        return self._read(arn, region)

    def _read(self, arn: str, region: str) -> str:
        assert region == "eu-west-1"
        self.calls += 1
        if self.failing is not None:
            raise self.failing
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(CANARY, id="plain"),
        pytest.param(json.dumps({"token": CANARY}), id="json-one-key"),
        pytest.param(" " + json.dumps({"GITHUB_TOKEN": CANARY}), id="json-spaced"),
    ],
)
async def test_a_secret_is_a_plain_string_or_a_json_object_of_one_key(stored: str) -> None:
    assert await TokenResolver(secrets=Secrets(stored)).resolve(SECRET) == CANARY


async def test_a_rotated_secret_is_read_again_once_the_cache_expires() -> None:
    """Read at use time: within ``ttl`` the value is reused, after it the secret is read
    again and a rotation is picked up."""
    secrets, clock = Secrets(CANARY), Clock()
    resolver = TokenResolver(secrets=secrets, ttl=30, clock=clock)
    assert await resolver.resolve(PARAMETER) == CANARY
    secrets.value = "ghp_rotated"
    clock.now += 29
    assert (await resolver.resolve(PARAMETER), secrets.calls) == (CANARY, 1)
    clock.now += 2
    assert (await resolver.resolve(PARAMETER), secrets.calls) == ("ghp_rotated", 2)
    resolver.forget(PARAMETER)
    assert (await resolver.resolve(PARAMETER), secrets.calls) == ("ghp_rotated", 3)


async def test_an_environment_variable_is_read_at_each_use() -> None:
    env = {"GH_TOKEN": CANARY}
    resolver = TokenResolver(environ=env)
    ref = parse_token_ref("GH_TOKEN")
    assert await resolver.resolve(ref) == CANARY
    env["GH_TOKEN"] = "rotated"
    assert await resolver.resolve(ref) == "rotated"
    env["GH_TOKEN"] = ""
    with pytest.raises(SourceError, match="environment variable GH_TOKEN is empty"):
        await resolver.resolve(ref)


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        pytest.param(json.dumps({"a": CANARY, "b": CANARY}), "2 keys (a, b)", id="two-keys"),
        pytest.param(json.dumps({"token": 7}), "is not a string", id="not-a-string"),
        pytest.param("", "is empty", id="empty"),
    ],
)
async def test_a_secret_that_is_no_token_says_why_without_its_value(
    stored: str, message: str
) -> None:
    with pytest.raises(SourceError) as error:
        await TokenResolver(secrets=Secrets(stored)).resolve(SECRET)
    assert message in error.value.one_line()
    assert SECRET.ref in error.value.one_line()
    assert CANARY not in error.value.one_line()


async def test_an_aws_error_names_the_secret_and_whether_to_retry() -> None:
    secrets = Secrets(CANARY)
    resolver = TokenResolver(secrets=secrets)
    secrets.failing = AwsError("throttled", code="ThrottlingException", retryable=True)
    with pytest.raises(SourceUnreachable, match="cannot read Secrets Manager secret"):
        await resolver.resolve(SECRET)
    secrets.failing = AwsError("denied", code="AccessDeniedException", retryable=False)
    with pytest.raises(SourceError) as error:
        await resolver.resolve(SECRET)
    assert not isinstance(error.value, SourceUnreachable)
    assert "secretsmanager:GetSecretValue" in error.value.one_line()


async def test_an_arn_needs_aws_access() -> None:
    with pytest.raises(SourceError, match="no AWS access"):
        await TokenResolver().resolve(SECRET)
