"""The ``Poster`` adapter: one aiohttp session for every delivery."""

from __future__ import annotations

from types import TracebackType

import aiohttp


class AiohttpPoster:
    """POSTs JSON with aiohttp. Errors of the HTTP stack become ``OSError``/``TimeoutError``,
    as the port says; the URL never appears in them (it is a secret)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpPoster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def post(self, url: str, body: bytes) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Content-Type": "application/json", "User-Agent": "glam"}
            )
        try:
            async with self._session.post(url, data=body) as response:
                await response.read()
                return response.status
        except aiohttp.ClientError as exc:
            raise OSError(f"notification not delivered: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
