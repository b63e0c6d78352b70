"""``AwsSecrets``: the ``SecretsApi`` port over Secrets Manager and SSM Parameter Store.

Read with the engine's own credentials, in the region the ARN names; one client per service
and region, opened on first use. The answers are secrets: nothing here logs them, and an
error carries only what ``engine.aws.errors.translate`` makes of AWS's message (which names
the secret, never its value). botocore's own debug logging, which would print the response,
is kept quiet by ``engine.logs``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import anyio

from engine.aws.errors import translate
from engine.aws.session import AwsConfig, open_clients
from engine.errors import AwsInvalid
from engine.metrics import NO_METRICS, Metrics


class AwsSecrets:
    """Secrets Manager and SSM, read only (see the module docstring)."""

    def __init__(self, config: AwsConfig, *, metrics: Metrics = NO_METRICS) -> None:
        self.config = config
        self._metrics = metrics
        self._stack = AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = anyio.Lock()

    async def secret_string(self, arn: str, region: str) -> str:
        client = await self._client("secretsmanager", region)
        try:
            answer = await client.get_secret_value(SecretId=arn)
        except Exception as exc:
            raise translate(exc, "GetSecretValue", mutating=False) from None
        if "SecretString" in answer:
            return str(answer["SecretString"])
        binary = answer.get("SecretBinary")
        try:
            return bytes(binary).decode("utf-8") if binary is not None else ""
        except UnicodeDecodeError:
            raise AwsInvalid(
                "GetSecretValue: the secret is binary and not UTF-8 text",
                operation="GetSecretValue",
                hint="store the token as a SecretString",
            ) from None

    async def parameter_value(self, arn: str, region: str) -> str:
        client = await self._client("ssm", region)
        try:
            answer = await client.get_parameter(Name=arn, WithDecryption=True)
        except Exception as exc:
            raise translate(exc, "GetParameter", mutating=False) from None
        return str(answer["Parameter"]["Value"])

    async def _client(self, service: str, region: str) -> Any:
        found = self._clients.get((service, region))
        if found is not None:
            return found
        async with self._lock:
            found = self._clients.get((service, region))
            if found is None:
                config = replace(self.config, region=region)
                with anyio.CancelScope(shield=True):
                    clients = await self._stack.enter_async_context(
                        open_clients(config, (service,), metrics=self._metrics)
                    )
                found = self._clients[(service, region)] = clients[service]
        return found

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
        self._clients.clear()
