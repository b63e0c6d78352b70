"""Secrets Manager and SSM Parameter Store through the embedded AWS: named in the journal,
their values never in it."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import botocore.session
import pytest

from engine.local import LocalAwsThread
from engine.local.journal import identifying_params
from engine.local.operations import identify
from tests.local.conftest import Clients, open_clients

CANARY = "glam-canary-7f3a9c"


class _Captured(Exception):
    """Stops botocore right before it would send: the request is all a test needs."""


def _sent(
    service: str, operation: str, **params: Any
) -> tuple[str, str, str, dict[str, str], bytes]:
    """What botocore puts on the wire for one call (method, path, query, headers, body)."""
    client = botocore.session.get_session().create_client(
        service,
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    seen: dict[str, Any] = {}

    def capture(request: Any, **_: Any) -> None:
        seen["request"] = request
        raise _Captured

    client.meta.events.register("before-send", capture)
    with pytest.raises(_Captured):
        getattr(client, operation)(**params)
    request = seen["request"]
    path, _, query = request.url.split("127.0.0.1:1", 1)[1].partition("?")
    headers = {
        k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
    }
    body = request.body or b""
    return request.method, path, query, headers, body if isinstance(body, bytes) else body.encode()


@pytest.mark.parametrize(
    ("service", "method", "params", "name"),
    [
        pytest.param(
            "secretsmanager",
            "create_secret",
            {"Name": "t", "SecretString": CANARY},
            "CreateSecret",
            id="create-secret",
        ),
        pytest.param(
            "secretsmanager",
            "get_secret_value",
            {"SecretId": "t"},
            "GetSecretValue",
            id="get-secret",
        ),
        pytest.param(
            "secretsmanager",
            "put_secret_value",
            {"SecretId": "t", "SecretString": CANARY},
            "PutSecretValue",
            id="put-secret",
        ),
        pytest.param(
            "ssm",
            "put_parameter",
            {"Name": "/p", "Value": CANARY, "Type": "SecureString"},
            "PutParameter",
            id="put-parameter",
        ),
        pytest.param(
            "ssm",
            "get_parameter",
            {"Name": "/p", "WithDecryption": True},
            "GetParameter",
            id="get-parameter",
        ),
        pytest.param(
            "sts",
            "assume_role",
            {
                "RoleArn": "arn:aws:iam::111111111111:role/r",
                "RoleSessionName": "engine",
                "ExternalId": CANARY,
            },
            "AssumeRole",
            id="assume-role",
        ),
    ],
)
def test_secret_calls_are_named_and_their_values_dropped(
    service: str, method: str, params: dict[str, Any], name: str
) -> None:
    """identify names Secrets Manager, SSM and STS calls from the bytes botocore sends, in
    the signing region; the journal's params keep the names and never the secret."""
    verb, path, query, headers, body = _sent(service, method, **params)
    op = identify(verb, path, query, headers, body)
    assert (op.service, op.name, op.region, op.access_key) == (
        service,
        name,
        "eu-west-1",
        "testing",
    )
    kept = identifying_params(body, headers.get("content-type", "")) or {}
    assert CANARY not in json.dumps(kept)
    named = {k: v for k, v in params.items() if k in ("Name", "SecretId", "RoleArn")}
    assert named.items() <= kept.items()


def test_params_keep_only_names() -> None:
    """Only top-level scalar parameters that name things are kept, cut short."""
    body = json.dumps(
        {
            "FunctionName": "f" * 500,
            "Environment": {"Variables": {"TOKEN": CANARY}},
            "Description": CANARY,
            "Value": CANARY,
            "KmsKeyId": "alias/x",
            "ZipFile": CANARY,
        }
    ).encode()
    assert identifying_params(body, "application/json") == {
        "FunctionName": "f" * 200,
        "KmsKeyId": "alias/x",
    }
    form = f"Action=CreateUser&Version=2010-05-08&UserName=u&Tags.member.1.Value={CANARY}"
    assert identifying_params(form.encode(), "application/x-www-form-urlencoded") == {
        "UserName": "u"
    }
    assert identifying_params(b"\x00binary", "application/octet-stream") is None


@pytest.mark.anyio
@pytest.mark.integration
async def test_secret_rotation_and_secure_parameter(aws: LocalAwsThread, clients: Clients) -> None:
    """A secret is created, read, rotated (a new value put) and read again; an SSM
    SecureString is read with decryption; the journal names every call and holds no value,
    not even over the control endpoint."""
    sm, ssm = clients.secretsmanager, clients.ssm
    await sm.create_secret(Name="git-token", SecretString=f"{CANARY}-1")
    assert (await sm.get_secret_value(SecretId="git-token"))["SecretString"] == f"{CANARY}-1"
    await sm.put_secret_value(SecretId="git-token", SecretString=f"{CANARY}-2")
    assert (await sm.get_secret_value(SecretId="git-token"))["SecretString"] == f"{CANARY}-2"
    await ssm.put_parameter(Name="/glam/token", Value=f"{CANARY}-3", Type="SecureString")
    got = await ssm.get_parameter(Name="/glam/token", WithDecryption=True)
    assert got["Parameter"]["Value"] == f"{CANARY}-3"
    hidden = await ssm.get_parameter(Name="/glam/token", WithDecryption=False)
    assert hidden["Parameter"]["Value"] != f"{CANARY}-3"

    journal = aws.journal
    assert [(e.service, e.operation, e.status) for e in journal] == [
        ("secretsmanager", "CreateSecret", 200),
        ("secretsmanager", "GetSecretValue", 200),
        ("secretsmanager", "PutSecretValue", 200),
        ("secretsmanager", "GetSecretValue", 200),
        ("ssm", "PutParameter", 200),
        ("ssm", "GetParameter", 200),
        ("ssm", "GetParameter", 200),
    ]
    assert journal.calls("PutSecretValue")[0].params == {"SecretId": "git-token"}
    assert journal.calls("PutParameter")[0].params == {
        "Name": "/glam/token",
        "Type": "SecureString",
    }
    assert CANARY not in repr(journal.entries)
    async with (
        aiohttp.ClientSession() as http,
        http.get(aws.endpoint_url + "/_glam/journal") as resp,
    ):
        text = await resp.text()
    assert "git-token" in text
    assert CANARY not in text


@pytest.mark.anyio
@pytest.mark.integration
async def test_secrets_are_per_account(aws: LocalAwsThread, clients: Clients) -> None:
    """A secret made in another account (through AssumeRole) is not the default account's."""
    from engine.local.clients import assume_role

    creds = await assume_role(aws.endpoint_url, "arn:aws:iam::111111111111:role/admin")
    async with AsyncExitStack() as stack:
        other = await open_clients(stack, aws.endpoint_url, creds)
        made = await other.secretsmanager.create_secret(Name="s", SecretString=CANARY)
        assert ":111111111111:" in made["ARN"]
        assert (await clients.secretsmanager.list_secrets())["SecretList"] == []
    (entry,) = aws.journal.calls("CreateSecret")
    assert entry.account == "111111111111"
