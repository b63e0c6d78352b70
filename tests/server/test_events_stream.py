"""``/api/v1/events`` as a server-sent event stream over real HTTP: the log from a position,
new events as they are appended, resumed with Last-Event-ID without a gap or a repeat."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest

from tests.runtime.support import Setup, write_function
from tests.server.support import Served, finished, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: dict[str, Any] | None
    comment: str | None = None


class Stream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> Frame:
        """The next event or comment (a ``retry`` line alone is skipped)."""
        fields: dict[str, str] = {}
        comment = None
        while True:
            line = (await self.response.content.readline()).decode()
            if line == "":
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if line == "":
                if fields.keys() - {"retry"} or comment is not None:
                    data = json.loads(fields["data"]) if "data" in fields else None
                    ident = int(fields["id"]) if "id" in fields else None
                    return Frame(ident, fields.get("event"), data, comment)
                fields, comment = {}, None
                continue
            if line.startswith(":"):
                comment = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")

    async def events(self, count: int) -> list[Frame]:
        out: list[Frame] = []
        with anyio.fail_after(30):
            while len(out) < count:
                frame = await self.next()
                if frame.id is not None:
                    out.append(frame)
        return out


@asynccontextmanager
async def stream(srv: Served, query: str = "", **headers: str) -> AsyncIterator[Stream]:
    sent = {"Accept": "text/event-stream", **srv.headers(), **headers}
    async with srv.http.get(f"{srv.url}/api/v1/events{query}", headers=sent) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        yield Stream(response)


async def test_a_stream_resumes_after_the_last_event_it_gave(setup: Setup) -> None:
    """A client reads part of the log and drops; reconnecting with Last-Event-ID, it gets
    every later event exactly once (positions contiguous), then new ones live; an idle stream
    gets keep-alive comments; ``type`` filters."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup) as srv:
        await srv.wait_for(finished(1))
        async with stream(srv, "?since=0") as first:
            head = await first.events(5)
        assert [f.id for f in head] == [1, 2, 3, 4, 5]
        assert head[0].data is not None
        assert head[0].data["position"] == 1
        assert [f.event for f in head] == [f.data["type"] for f in head if f.data]

        total = await srv.engine.store.last_position()
        # since=0 is overridden by Last-Event-ID: the stream goes on after 5.
        async with stream(srv, "?since=0", **{"Last-Event-ID": "5"}) as second:
            rest = await second.events(total - 5)
            assert [f.id for f in rest] == list(range(6, total + 1))
            with anyio.fail_after(10):
                idle = await second.next()
            assert (idle.id, idle.comment) == (None, "keep-alive")
            write_function(setup.repo, setup.outputs, code="green", traffic=FAST)
            sha = setup.repo.commit("green")
            live = await second.events(1)
            assert live[0].id == total + 1
            assert live[0].data is not None
            assert live[0].data["data"]["sha"] == sha

        async with stream(srv, "?type=DeploymentFinished&since=0") as only:
            done = await only.events(2)
        assert {f.event for f in done} == {"DeploymentFinished"}
        assert done[0].id is not None
        assert done[1].id is not None
        assert done[0].id < done[1].id


async def test_an_open_stream_ends_when_the_engine_stops(setup: Setup) -> None:
    """The engine stops within seconds while a client follows the log: the stream ends."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup) as srv:
        await srv.wait_for(finished(1))
        async with stream(srv, "?type=DeploymentFinished") as open_stream:
            await open_stream.events(1)
            with anyio.fail_after(10):
                srv.engine.stop()
                with pytest.raises((EOFError, aiohttp.ClientError)):
                    await _until_the_end(open_stream)


async def _until_the_end(open_stream: Stream) -> None:
    while True:
        await open_stream.next()
