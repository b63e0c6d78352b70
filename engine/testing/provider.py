"""``FakeProvider``: the engine's AWS ports in memory, one ``FakeAws`` and ``FakeSources`` per
account and region, for ``Engine(config, ports=FakeProvider())``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.errors import AccountNotConfigured
from engine.ports import SecretsApi
from engine.runtime.providers import RegionPorts
from engine.testing.aws import FakeAws
from engine.testing.sources import FakeSources


class FakeProvider:
    """In-memory AWS for the engine's own ``account`` and the ``others`` it may act in (as if
    it had a role there). ``fakes[region]`` is the own account's ``(FakeAws, FakeSources)``
    of that region, ``fakes_of[(account, region)]`` any account's, made on first use;
    ``fake_options`` go to every ``FakeAws``. ``secrets_api`` answers token reads."""

    def __init__(
        self,
        account: str = "123456789012",
        *,
        others: Iterable[str] = (),
        secrets_api: SecretsApi | None = None,
        **fake_options: Any,
    ) -> None:
        self._account = account
        self._others = frozenset(others)
        self._options = fake_options
        self._secrets = secrets_api
        self.fakes: dict[str, tuple[FakeAws, FakeSources]] = {}
        self.fakes_of: dict[tuple[str, str], tuple[FakeAws, FakeSources]] = {}

    async def account(self) -> str:
        return self._account

    async def region(self, region: str, account: str | None = None) -> RegionPorts:
        account = account or self._account
        if account != self._account and account not in self._others:
            raise AccountNotConfigured(
                f"account {account} is not configured",
                hint=f'add an [[account]] entry with id = "{account}"',
            )
        key = (account, region)
        if key not in self.fakes_of:
            self.fakes_of[key] = (
                FakeAws(account=account, region=region, **self._options),
                FakeSources(region=region, account=account),
            )
            if account == self._account:
                self.fakes[region] = self.fakes_of[key]
        aws, sources = self.fakes_of[key]
        return RegionPorts(region=region, lambda_api=aws, alarms=aws, sources=sources)

    def secrets(self) -> SecretsApi | None:
        return self._secrets

    def configure(self, accounts: Mapping[str, Any]) -> None:
        self._others = self._others | frozenset(accounts)

    async def aclose(self) -> None:
        return None
