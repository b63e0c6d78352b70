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


def aws_client(
    service: str,
    endpoint_url: str,
    *,
    region: str = "us-east-1",
    credentials: tuple[str, str] = ("testing", "testing"),
    max_attempts: int = 1,
) -> AbstractAsyncContextManager[Any]:
    """``async with aws_client("lambda", aws.endpoint_url) as lam:`` — a plain aiobotocore
    client. ``max_attempts`` 1 (the default) shows every refusal and fault as it is."""
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": max_attempts})
    client: AbstractAsyncContextManager[Any] = get_session().create_client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=credentials[0],
        aws_secret_access_key=credentials[1],
        config=config,
    )
    return client
