"""A TCP proxy on 127.0.0.1 that cuts connections on purpose: the network failing under a
database client, as a real one does (a failover, a NAT timeout, a cable)."""

from __future__ import annotations

from types import TracebackType

import anyio
from anyio.abc import Listener, SocketAttribute, SocketStream, TaskGroup


class _Link:
    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.muted = False  # the server's replies are no longer relayed


class CuttingProxy:
    """``async with CuttingProxy(port) as proxy:`` forwards ``127.0.0.1:proxy.port`` to
    ``127.0.0.1:port`` until told to cut.

    - ``cut_all()`` closes every connection now, whatever is in flight;
    - ``cut_after(pattern, times, delay)`` arms a cut for the next ``times`` client messages
      that contain ``pattern``: the message reaches the server, its reply never reaches the
      client, and ``delay`` seconds later the connection is closed. With ``b"COMMIT"`` that is
      a transaction committed whose client never hears so.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.cuts = 0
        self._pattern = b""
        self._armed = 0
        self._delay = 0.0
        self._links: set[_Link] = set()
        self._task_group: TaskGroup | None = None
        self._listener: Listener[SocketStream] | None = None

    async def __aenter__(self) -> CuttingProxy:
        self._listener = listener = await anyio.create_tcp_listener(
            local_host="127.0.0.1", local_port=0
        )
        self.port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(listener.serve, self._handle)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            if self._listener is not None:
                await self._listener.aclose()

    def cut_all(self) -> None:
        for link in list(self._links):
            link.scope.cancel()
        self.cuts += len(self._links)

    def cut_after(self, pattern: bytes, *, times: int = 1, delay: float = 0.2) -> None:
        self._pattern, self._armed, self._delay = pattern, times, delay

    async def _handle(self, client: SocketStream) -> None:
        try:
            # Shielded: a connect cancelled part way (the proxy closing) could leave its
            # socket open; to 127.0.0.1 it takes a moment.
            with anyio.CancelScope(shield=True), anyio.fail_after(5):
                upstream = await anyio.connect_tcp("127.0.0.1", self.upstream_port)
        except (OSError, TimeoutError):
            with anyio.CancelScope(shield=True):
                await client.aclose()
            return
        link = _Link()
        self._links.add(link)
        try:
            with link.scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, client, upstream, link, True)
                    tg.start_soon(self._pump, upstream, client, link, False)
        finally:
            self._links.discard(link)
            with anyio.CancelScope(shield=True):
                await client.aclose()
                await upstream.aclose()

    async def _pump(
        self, source: SocketStream, sink: SocketStream, link: _Link, outbound: bool
    ) -> None:
        try:
            async for chunk in source:
                if link.muted and not outbound:
                    continue
                await sink.send(chunk)
                if outbound and self._armed and self._pattern in chunk:
                    self._armed -= 1
                    self.cuts += 1
                    link.muted = True
                    await anyio.sleep(self._delay)
                    break
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        link.scope.cancel()  # one side ended or was cut: end both
