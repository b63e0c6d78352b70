"""aiobotocore clients pointed at the embedded AWS, for its account builder and for tests.

The embedded AWS is test and demo infrastructure, not an adapter of the engine: it is driven
with the same client library any AWS user would use, so this module (and only it, inside
``engine.local``) imports aiobotocore.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from aiobotocore.config import AioConfig  # noqa: TID251 - see the module docstring
from aiobotocore.session import get_session  # noqa: TID251 - see the module docstring

_SESSIONS: list[Any] = []


def _session() -> Any:
    """One botocore session for every client here: making one registers some six hundred
    event handlers, and each reads the service models anew. The clients it makes carry
    their own credentials, so sharing it shares nothing else."""
    if not _SESSIONS:
        _SESSIONS.append(get_session())
    return _SESSIONS[0]


Credentials = tuple[str, str] | tuple[str, str, str]
"""``(access key id, secret)``, or with a session token third (assumed-role credentials)."""


def aws_client(
    service: str,
    endpoint_url: str,
    *,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
    max_attempts: int = 1,
) -> AbstractAsyncContextManager[Any]:
    """``async with aws_client("lambda", aws.endpoint_url) as lam:`` — a plain aiobotocore
    client. ``max_attempts`` 1 (the default) shows every refusal and fault as it is."""
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": max_attempts})
    client: AbstractAsyncContextManager[Any] = _session().create_client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=credentials[0],
        aws_secret_access_key=credentials[1],
        aws_session_token=credentials[2] if len(credentials) > 2 else None,
        config=config,
    )
    return client


async def assume_role(
    endpoint_url: str,
    role_arn: str,
    *,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
    session_name: str = "glam-local",
    max_attempts: int = 1,
) -> tuple[str, str, str]:
    """``sts:AssumeRole`` into ``role_arn``: ``(key, secret, token)`` that act in its account."""
    async with aws_client(
        "sts", endpoint_url, region=region, credentials=credentials, max_attempts=max_attempts
    ) as sts:
        answer = await sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)
    creds = answer["Credentials"]
    return (str(creds["AccessKeyId"]), str(creds["SecretAccessKey"]), str(creds["SessionToken"]))
