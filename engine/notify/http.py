"""The ``Poster`` adapter: one aiohttp session for every delivery (notifications' JSON, and
traces' protobuf: ``engine.traces``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import aiohttp


class AiohttpPoster:
    """POSTs JSON (or ``content_type``) with aiohttp. Errors of the HTTP stack become
    ``OSError``/``TimeoutError``, as the port says; the URL never appears in them (it is a
    secret), nor do the ``headers`` a post is given (credentials, for a trace collector)."""

    def __init__(self, content_type: str = "application/json") -> None:
        self._session: aiohttp.ClientSession | None = None
        self._content_type = content_type

    async def __aenter__(self) -> AiohttpPoster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Content-Type": self._content_type, "User-Agent": "glam"}
            )
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status
        except aiohttp.ClientError as exc:
            raise OSError(f"not delivered: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
