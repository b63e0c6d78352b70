"""Group commit: many concurrent writes, one writer task, one transaction per batch.

``WriteQueue.submit`` queues a write and waits for its outcome; ``WriteQueue.run`` (the writer
task) takes everything queued when it wakes and hands it to the store's ``run_batch`` in
batches: consecutive appends together, up to ``max_batch``, and every other job (a view save,
an import) alone. A batch is run shielded from cancellation, because a transaction half done
must finish and every waiter must hear back; on close the queue is drained first, and whatever
is still queued when the writer stops is failed, never left waiting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.errors import StoreError
from engine.store.records import AppendRequest


@dataclass(slots=True)
class Pending:
    """One queued write and the slot its result comes back in: an append ``request``, or a
    ``job`` the store runs on its connection inside the batch's transaction."""

    request: AppendRequest | None = None
    job: Callable[[Any], Awaitable[Any]] | None = None
    appends: bool = False  # a job that adds events: followers are woken after it
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class WriteQueue:
    """The queue between the callers and the one writer task of a store."""

    def __init__(self, *, max_batch: int, name: str) -> None:
        self.max_batch = max(1, max_batch)
        self.name = name  # for "use it inside `async with ...`"
        self.running = False
        self.closing = False
        self._queue: deque[Pending] = deque()
        self._wake = anyio.Event()
        self._stopped = anyio.Event()

    async def submit(self, pending: Pending) -> Any:
        """Queue ``pending`` and wait for its outcome; its error is raised here."""
        if self.closing or not self.running:
            raise StoreError(
                "the event store is not open", hint=f"use it inside `async with {self.name}:`"
            )
        self._queue.append(pending)
        self._wake.set()
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def start(self) -> None:
        """Accept writes from now on (called before the writer task is started)."""
        self.running = True

    async def run(self, run_batch: Callable[[list[Pending]], Awaitable[None]]) -> None:
        """The writer task: until ``close``, run what is queued. ``run_batch`` sets each
        pending's result or error; the queue sets ``done``."""
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._queue:
                    batch = self._take()
                    with anyio.CancelScope(shield=True):
                        try:
                            await run_batch(batch)
                        except Exception as exc:  # a bug: every waiter must hear of it
                            for pending in batch:
                                pending.error = exc
                        finally:
                            for pending in batch:
                                pending.done.set()
                if self.closing:
                    return
        finally:
            # Cancelled from outside: whoever still waits must hear that nothing was written.
            while self._queue:
                pending = self._queue.popleft()
                pending.error = StoreError(
                    "the event store closed before this write", hint="retry after reopening"
                )
                pending.done.set()
            self._stopped.set()

    def _take(self) -> list[Pending]:
        batch = [self._queue.popleft()]
        while (
            batch[0].job is None
            and self._queue
            and self._queue[0].job is None
            and len(batch) < self.max_batch
        ):
            batch.append(self._queue.popleft())
        return batch

    async def close(self) -> None:
        """Refuse new writes, let the writer finish what is queued, wait for it to stop."""
        self.closing = True
        self._wake.set()
        if self.running:
            await self._stopped.wait()
