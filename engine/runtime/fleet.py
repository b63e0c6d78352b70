"""The watched branches: one repository loop per (repository, branch), in the engine's task
group, and the set of them changing while the engine runs.

    fleet.apply(watches)    start a loop for each new (repository, branch), stop the loops of
                            the ones no longer listed (their functions stay as they are:
                            stopping to watch deletes nothing)
    fleet.poll_all()        one look at every branch, in order (``glam run --once``)

Every loop plans under the one ``lock``: plans of different branches never interleave, so the
ownership of a function is decided on a log that holds every earlier claim, and an operator's
allow-deletes (which plans too) waits for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from engine.logs import get_logger
from engine.ports import Clock
from engine.redact import redact_url, repository_id
from engine.runtime.repository import Repository
from engine.tokens import TokenRef

log = get_logger("engine")


@dataclass(frozen=True, slots=True)
class Watch:
    """One branch of one repository, as the engine watches it: ``branch`` None is the
    repository's default branch; ``token`` where its HTTPS token is read at each fetch;
    ``poll`` seconds between fetches (None: the engine's); ``paths`` the folders whose
    functions it owns (empty: the whole repository)."""

    url: str
    branch: str | None = None
    token: TokenRef | None = None
    poll: float | None = None
    paths: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str | None]:
        """What makes two watches the same branch: the repository's identity and branch."""
        return repository_id(self.url), self.branch

    def describe(self) -> str:
        return f"{redact_url(self.url)} {self.branch or '(default branch)'}"


@dataclass
class _Running:
    watch: Watch
    repository: Repository
    scope: anyio.CancelScope | None = None


class Fleet:
    """The engine's repository loops (see the module docstring). ``make`` builds the
    ``Repository`` of a watch (its source included); ``interval`` is the engine's poll, slept
    on ``clock``."""

    def __init__(
        self,
        task_group: TaskGroup,
        make: Callable[[Watch], Repository],
        *,
        interval: float,
        clock: Clock,
    ) -> None:
        self._tg = task_group
        self._make = make
        self._interval = interval
        self._clock = clock
        self._running: dict[tuple[str, str | None], _Running] = {}
        self._looping = False
        self.lock = anyio.Lock()

    @property
    def repositories(self) -> list[Repository]:
        return [r.repository for r in self._running.values()]

    def watches(self) -> list[Watch]:
        return [r.watch for r in self._running.values()]

    def running(self) -> list[tuple[Watch, Repository]]:
        """Each watched branch with its repository loop."""
        return [(r.watch, r.repository) for r in self._running.values()]

    def apply(self, watches: Iterable[Watch]) -> None:
        """Watch exactly ``watches`` from now on (see the module docstring)."""
        wanted = {w.key: w for w in watches}
        for key in [k for k in self._running if k not in wanted]:
            running = self._running.pop(key)
            log.info(
                "no longer watching %s: its functions stay as they are", running.watch.describe()
            )
            running.repository.stop()
            if running.scope is not None:
                running.scope.cancel()
            self._tg.start_soon(running.repository.aclose, name="glam close source")
        for key, watch in wanted.items():
            current = self._running.get(key)
            if current is not None and current.watch == watch:
                continue
            if current is not None:
                # Settings of a watched branch changed (token, poll, paths): start it afresh.
                self._running.pop(key)
                current.repository.stop()
                if current.scope is not None:
                    current.scope.cancel()
                self._tg.start_soon(current.repository.aclose, name="glam close source")
            running = _Running(watch, self._make(watch))
            self._running[key] = running
            if current is None:
                log.info("watching %s", watch.describe())
            if self._looping:
                self._start(running)

    def start_loops(self) -> None:
        """Poll every branch on its interval from now on, in the task group."""
        self._looping = True
        for running in self._running.values():
            if running.scope is None:
                self._start(running)

    async def poll_all(self) -> None:
        """One look at every watched branch, one after the other."""
        for running in list(self._running.values()):
            await running.repository.poll()

    def for_stream(self, stream: str) -> Repository | None:
        """The repository loop whose branch is ``stream``."""
        return next((r for r in self.repositories if r.stream == stream), None)

    def _start(self, running: _Running) -> None:
        scope = anyio.CancelScope()
        running.scope = scope
        interval = running.watch.poll or self._interval

        async def loop() -> None:
            with scope:
                await running.repository.loop(interval, self._clock)

        self._tg.start_soon(loop, name=f"glam repository {running.watch.describe()}")
