"""``FakeProvider``: the engine's AWS ports in memory, one ``FakeAws`` and ``FakeSources`` per
region, for ``Engine(config, ports=FakeProvider())``."""

from __future__ import annotations

from typing import Any

from engine.runtime.providers import RegionPorts
from engine.testing.aws import FakeAws
from engine.testing.sources import FakeSources


class FakeProvider:
    """In-memory AWS for one account. ``fakes[region]`` is that region's ``(FakeAws,
    FakeSources)``, made on first use; ``fake_options`` go to every ``FakeAws``."""

    def __init__(self, account: str = "123456789012", **fake_options: Any) -> None:
        self._account = account
        self._options = fake_options
        self.fakes: dict[str, tuple[FakeAws, FakeSources]] = {}

    async def account(self) -> str:
        return self._account

    async def region(self, region: str) -> RegionPorts:
        if region not in self.fakes:
            self.fakes[region] = (
                FakeAws(account=self._account, region=region, **self._options),
                FakeSources(region=region, account=self._account),
            )
        aws, sources = self.fakes[region]
        return RegionPorts(region=region, lambda_api=aws, alarms=aws, sources=sources)

    async def aclose(self) -> None:
        return None
