"""An engine serving HTTP on a free loopback port, and a client for it, over real HTTP.

async with serving(setup, api_token="s3cret") as srv:
    status, body = await srv.get("/api/v1/functions")
    await srv.wait_for(lambda r: r.type == "DeploymentFinished")
"""

from __future__ import annotations

import json as json_module
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import anyio

import engine.server.app  # loaded here, not by an engine inside a test's loop
import engine.server.dashboard
import engine.server.metrics  # noqa: F401 - (reading modules there is a blocking call)
from engine.events import RecordedEvent
from engine.runtime.engine import Engine, RunReport
from engine.server.settings import ServerSettings
from engine.tokens import TokenRef
from tests.runtime.support import Setup

DEFAULT: Any = object()  # "the token the server was started with"
API_TOKEN = "s3cret-token"
HOOK_SECRET = "hook-secret"
TOKEN_ENV = "GLAM_TEST_API_TOKEN"
SECRET_ENV = "GLAM_TEST_WEBHOOK_SECRET"


@dataclass
class Served:
    """A running engine, its server's base URL and an HTTP client."""

    engine: Engine
    url: str
    http: aiohttp.ClientSession
    token: str | None
    report: RunReport = field(default_factory=RunReport)
    seen: list[RecordedEvent] = field(default_factory=list)

    def headers(self, token: str | None = DEFAULT, **extra: str) -> dict[str, str]:
        token = self.token if token is DEFAULT else token
        out = dict(extra)
        if token:
            out["Authorization"] = f"Bearer {token}"
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None = DEFAULT,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any]:
        sent = {**self.headers(token), **(headers or {})}
        async with self.http.request(
            method, self.url + path, json=json, data=data, headers=sent
        ) as answer:
            text = await answer.text()
            try:
                body: Any = json_module.loads(text) if text else None
            except ValueError:
                body = text
            return answer.status, body

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return await self.request("POST", path, json=json, **kwargs)

    async def wait_for(
        self, test: Callable[[RecordedEvent], bool], *, within: float = 60
    ) -> RecordedEvent:
        """The first event the engine appended (since it started) that passes ``test``."""
        with anyio.fail_after(within):
            while True:
                for record in self.seen:
                    if test(record):
                        return record
                await anyio.sleep(0.05)

    async def log(self) -> list[RecordedEvent]:
        return await self.engine.store.read_all()


@asynccontextmanager
async def serving(
    setup: Setup,
    *,
    api_token: str | None = API_TOKEN,
    webhook_secret: str | None = HOOK_SECRET,
    auth_reads: bool = False,
    once: bool = False,
    server: dict[str, Any] | None = None,
    **changes: Any,
) -> AsyncIterator[Served]:
    """The engine of ``setup`` running (until the block ends) with its server on 127.0.0.1."""
    saved = {k: os.environ.get(k) for k in (TOKEN_ENV, SECRET_ENV)}
    for name, value in ((TOKEN_ENV, api_token), (SECRET_ENV, webhook_secret)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    settings = ServerSettings(
        api_token=TokenRef("env", TOKEN_ENV) if api_token is not None else None,
        webhook_secret=TokenRef("env", SECRET_ENV) if webhook_secret is not None else None,
        auth_reads=auth_reads,
        heartbeat=0.5,
    )
    if server:
        settings = replace(settings, **server)
    seen: list[RecordedEvent] = []
    config = setup.config(server=settings, **changes)
    engine = Engine(config, on_event=seen.append)
    try:
        async with engine, aiohttp.ClientSession() as http, anyio.create_task_group() as tg:
            served = Served(engine, "", http, api_token, seen=seen)

            async def run() -> None:
                served.report = await engine.run(once=once)

            tg.start_soon(run)
            with anyio.fail_after(30):
                # The engine sets the address in its own task once the server is bound.
                while engine.listening is None:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            host, port = engine.listening
            served.url = f"http://{host}:{port}"
            try:
                yield served
            finally:
                engine.stop()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


SECRET_VALUE = "canary-Zq81-env-value"  # a function environment value no answer may carry


def with_environment(setup: Setup, prefix: str, variables: dict[str, str]) -> None:
    """Give the function at ``prefix`` (written by ``write_function``) these variables."""
    path = setup.repo.path / f"{prefix}_lambdadef.json"
    definition = json_module.loads(path.read_text())
    definition["Environment"] = {"Variables": variables}
    setup.repo.write(f"{prefix}_lambdadef.json", definition)


def finished(count: int) -> Callable[[RecordedEvent], bool]:
    """A test for ``wait_for``: the ``count``-th DeploymentFinished seen."""
    seen: list[int] = []

    def test(record: RecordedEvent) -> bool:
        if record.type == "DeploymentFinished" and record.position not in seen:
            seen.append(record.position)
        return len(seen) >= count

    return test
