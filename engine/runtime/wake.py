"""A loop's nap that can be cut short: the repository loop sleeps ``poll`` seconds between
fetches, and a push (a webhook, ``POST /api/v1/sync``) wakes it at once; the operators loop
is woken by a command given through the API.

    wake = Wakeup()
    while True:
        await look()
        await wake.nap(interval)        # returns early once ``wake.set()`` is called

A ``set`` while the loop is busy (mid-fetch, so the push may have come after it read the
branch) is kept: the next nap returns at once, so no push is ever lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


class Wakeup:
    """See the module docstring. For one loop, in one event loop (not thread-safe)."""

    def __init__(self) -> None:
        self._pending = False
        self._scope: anyio.CancelScope | None = None

    def set(self) -> None:
        """Wake the loop now, or at its next nap if it is not napping."""
        self._pending = True
        if self._scope is not None:
            self._scope.cancel()

    async def nap(
        self, seconds: float, sleep: Callable[[float], Awaitable[object]] = anyio.sleep
    ) -> bool:
        """Sleep ``seconds`` (through ``sleep``), or less if woken; whether it was woken."""
        if not self._pending:
            with anyio.CancelScope() as scope:
                self._scope = scope
                try:
                    await sleep(seconds)
                finally:
                    self._scope = None
        woken, self._pending = self._pending, False
        return woken
