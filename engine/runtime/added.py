"""The repositories added through the API (Gitmoxi's ``POST /repositories/add``), watched by
the fleet beside the configuration file's.

    added = AddedRepositories(store, ids)
    await added.load()                          fold the ``repositories`` stream (at start)
    added.watches(configured)                   their branches, as the fleet watches them
    await added.add(url, branches, token, actor=..., configured=...)      RepositoryAdded
    await added.remove(url, actor=..., configured=...)                    RepositoryRemoved

What is added is recorded before it is watched, so a restart watches it again; removing one
only stops watching it (its functions stay as they are, as when the configuration file drops
a repository). A repository the configuration file lists is the file's: adding it again is
refused, and so is removing it (the file is edited instead). The rules a new repository
meets, and the fold, are ``engine.registry``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio

from engine.commands import CommandRefused, UnknownTarget
from engine.config.model import RepositorySettings
from engine.errors import UsageError
from engine.events import RecordedEvent, stamped
from engine.events.registry import REPOSITORIES_STREAM, RepositoryAdded, RepositoryRemoved
from engine.ports import ANY_VERSION, EventStore
from engine.redact import redact_url, repository_id
from engine.registry import Registered, decide_add, decide_remove, fold_registry
from engine.runtime.fleet import Watch


def watches_of(settings: RepositorySettings) -> list[Watch]:
    """The watches of a repository entry: one per branch (its default branch when it names
    none), its token by reference."""
    return [
        Watch(
            url=settings.location,
            branch=branch,
            token=settings.token_ref,
            poll=settings.poll,
            paths=settings.paths,
        )
        for branch in settings.branches or (None,)
    ]


class AddedRepositories:
    """See the module docstring. ``ids`` makes event ids."""

    def __init__(self, store: EventStore, ids: Callable[[], str]) -> None:
        self._store = store
        self._ids = ids
        self.registry: dict[str, Registered] = {}  # by repository_id
        self._lock = anyio.Lock()  # one add or remove at a time: each is folded in order

    async def load(self) -> None:
        """Fold what the log says was added and not removed."""
        self.registry = fold_registry(await self._store.read_stream(REPOSITORIES_STREAM))

    def watches(self, configured: Sequence[Watch]) -> list[Watch]:
        """The branches of every added repository the configuration file does not list."""
        listed = {repository_id(w.url) for w in configured}
        return [
            watch
            for key, registered in self.registry.items()
            if key not in listed
            for watch in watches_of(registered.settings)
        ]

    async def add(
        self,
        url: str,
        branches: Sequence[str],
        token: str | None,
        *,
        actor: str,
        configured: Sequence[Watch],
    ) -> RecordedEvent:
        """Record ``url`` as added (again: these branches and token replace the earlier ones);
        ``UsageError`` for a request the rules refuse, ``CommandRefused`` for a repository
        the configuration file lists."""
        try:
            event = decide_add(url, branches, token)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        key = repository_id(event.url)
        if key in {repository_id(w.url) for w in configured}:
            raise CommandRefused(
                f"{redact_url(event.url)} is in the configuration file",
                hint="change its [[repository]] entry there (and reload the engine)",
            )
        async with self._lock:
            record = await self._append(event, actor)
            self.registry[key] = Registered(event.url, event.branches, event.token, actor)
        return record

    async def remove(self, url: str, *, actor: str, configured: Sequence[Watch]) -> RecordedEvent:
        """Record ``url`` as removed; ``UnknownTarget`` when it was not added through the API,
        ``CommandRefused`` when the configuration file lists it."""
        if repository_id(url) in {repository_id(w.url) for w in configured}:
            raise CommandRefused(
                f"{redact_url(url)} is in the configuration file, not added through the API",
                hint="remove its [[repository]] entry there (and reload the engine)",
            )
        async with self._lock:
            try:
                event = decide_remove(self.registry, url)
            except LookupError as exc:
                raise UnknownTarget(
                    str(exc), hint="GET /api/v1/repositories lists what is watched"
                ) from None
            record = await self._append(event, actor)
            self.registry.pop(repository_id(event.url), None)
        return record

    async def _append(
        self, event: RepositoryAdded | RepositoryRemoved, actor: str
    ) -> RecordedEvent:
        batch = stamped([event], iter(self._ids, None), actor=actor)
        # Shielded: once decided, it is recorded whole even while the engine stops.
        with anyio.CancelScope(shield=True):
            [record] = await self._store.append(REPOSITORIES_STREAM, batch, ANY_VERSION)
        return record
