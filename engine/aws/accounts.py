"""Credentials per AWS account: the engine's own, and an assumed role's for every other.

The engine's own credentials come from the usual chain (environment, profile, SSO, instance
role) or, for a local endpoint, from ``AwsConfig``'s explicit keys. For each configured
account (``[[account]]`` in ``glam.toml``) they call STS AssumeRole on the account's role, with
its external id and session name, and the answer becomes an aiobotocore session of that
account. Its credentials are aiobotocore's refreshable ones: botocore renews them before they
expire (15 minutes ahead, at the latest 10), by calling AssumeRole again, so a long-running
engine never signs with expired credentials. One session per account, made on first use and
shared by every region's clients.

Secrets never leave: the credentials live in the session only; errors name the role, never a
key.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import anyio
from aiobotocore.credentials import AioRefreshableCredentials  # noqa: TID251 - AWS adapter
from aiobotocore.session import AioSession  # noqa: TID251 - AWS adapter

from engine.aws.errors import translate
from engine.aws.session import AwsConfig, caller_account, new_session, open_clients
from engine.config.model import AccountSettings
from engine.errors import AccountNotConfigured, AwsError
from engine.metrics import NO_METRICS, Metrics

ASSUME_ROLE_SECONDS = 3600  # the default session length; botocore refreshes 15 min ahead


class AccountSessions:
    """The aiobotocore session of each account the engine acts in.

    ``session(account)`` is None for the engine's own account (its clients use ``config``
    as ``open_clients`` does), an assumed role's session for a configured one, and raises
    ``AccountNotConfigured`` for any other.
    """

    def __init__(
        self,
        config: AwsConfig,
        accounts: Mapping[str, AccountSettings],
        *,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.config = config
        self._metrics = metrics  # STS's calls are counted with every other AWS call
        self.accounts = dict(accounts)
        self._stack = AsyncExitStack()
        self._sts: Any = None
        self._own: str | None = None
        self._sessions: dict[str, AioSession] = {}
        self._credentials: dict[str, AioRefreshableCredentials] = {}
        self._lock = anyio.Lock()

    async def own_account(self) -> str:
        """The account of the engine's own credentials (STS GetCallerIdentity), cached."""
        if self._own is None:
            async with self._lock:
                if self._own is None:
                    self._own = await caller_account(await self._own_sts())
        return self._own

    async def session(self, account: str) -> AioSession | None:
        """The session acting in ``account`` (None: the engine's own)."""
        if account == await self.own_account():
            return None
        found = self._sessions.get(account)
        if found is not None:
            return found
        settings = self.accounts.get(account)
        if settings is None or settings.role_arn is None:
            raise AccountNotConfigured(
                f"account {account} is not configured: the engine has no role to assume there",
                hint=f'add an [[account]] entry with id = "{account}" and the role_arn the '
                "engine assumes in it to glam.toml",
            )
        async with self._lock:
            found = self._sessions.get(account)
            if found is None:
                found = await self._assumed(settings)
                self._sessions[account] = found
        return found

    def configure(self, accounts: Mapping[str, AccountSettings]) -> None:
        """Act in these accounts from now on. A session whose role or external id changed
        is dropped and assumed again on next use."""
        for account_id, settings in accounts.items():
            if self.accounts.get(account_id) != settings:
                self._sessions.pop(account_id, None)
                self._credentials.pop(account_id, None)
        for account_id in set(self.accounts) - set(accounts):
            self._sessions.pop(account_id, None)
            self._credentials.pop(account_id, None)
        self.accounts = dict(accounts)

    def credentials(self, account: str) -> AioRefreshableCredentials | None:
        """The refreshable credentials of an assumed account, once its session exists (for
        tests that move their expiry)."""
        return self._credentials.get(account)

    async def _own_sts(self) -> Any:
        if self._sts is None:
            with anyio.CancelScope(shield=True):
                opened = open_clients(self.config, ("sts",), metrics=self._metrics)
                clients = await self._stack.enter_async_context(opened)
            self._sts = clients.sts
        return self._sts

    async def _assumed(self, settings: AccountSettings) -> AioSession:
        role = settings.role_arn
        assert role is not None  # session() checked it
        params: dict[str, Any] = {
            "RoleArn": role,
            "RoleSessionName": settings.session_name,
            "DurationSeconds": ASSUME_ROLE_SECONDS,
        }
        if settings.external_id is not None:
            params["ExternalId"] = settings.external_id
        sts = await self._own_sts()

        async def assume() -> dict[str, str]:
            try:
                answer = await sts.assume_role(**params)
            except Exception as exc:
                error = translate(exc, "AssumeRole", mutating=False)
                raise AwsError(
                    f"cannot assume {role} for account {settings.id}: {error.message}",
                    code=error.code,
                    operation="AssumeRole",
                    status=error.status,
                    retryable=error.retryable,
                    hint="check the role's trust policy (it must trust the engine's account"
                    + (", with this external id" if settings.external_id else "")
                    + ") and that the engine's role may call sts:AssumeRole on it",
                ) from None
            creds = answer["Credentials"]
            expiry = creds["Expiration"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": expiry.isoformat() if hasattr(expiry, "isoformat") else expiry,
            }

        credentials = AioRefreshableCredentials.create_from_metadata(
            metadata=await assume(), refresh_using=assume, method="sts-assume-role"
        )
        session = new_session(replace(self.config, profile=None))
        # botocore has no public way to give a session refreshable credentials; setting the
        # session's credentials is what its own assume-role provider ends up doing.
        session._credentials = credentials
        self._credentials[settings.id] = credentials
        return session

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
        self._sts = None
        self._sessions.clear()
        self._credentials.clear()
