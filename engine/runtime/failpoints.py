"""Named crash points for chaos tests: the process SIGKILLs itself at a chosen point.

Armed only by passing ``Engine(failpoints=Failpoints(parse(spec)))``: glam never reads them
from its environment, so no setting of a user's can make a production engine kill itself (the
chaos tests start their child engine through a small script that does). Unarmed, a point is a
no-op. A spec holds comma-separated points::

    publish_version:after_call
    update_alias:before_call@3,delete_version:before_call

A point is ``<operation>:<when>[@<n>]``: ``operation`` is a mutating port method
(``MUTATIONS``), ``when`` is ``before_call`` (the StepStarted intent is durable, the call is
not made) or ``after_call`` (the call returned, its outcome is not recorded), and ``@n`` fires
at the n-th time that point is reached in this process (default: the first).

The points sit on the ports rather than inside the saga runner: the runner makes the intent
durable before it calls a port and records the outcome only after the port returns, so a port
wrapper (``guard``) sees exactly the two moments the write-ahead rule is about.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.errors import ConfigError
from engine.saga.effects import OPERATIONS

WHEN = ("before_call", "after_call")

# Every AWS mutation a saga performs, by port method name: the operations whose intent is
# made durable before the call (engine.saga.effects).
MUTATIONS = frozenset(operation.method for operation in OPERATIONS if operation.mutation)


def parse(spec: str) -> dict[str, int]:
    """``{"<operation>:<when>": n}`` from a spec; ``ConfigError`` on a point that names no
    known operation or moment (a typo must not silently test nothing)."""
    points: dict[str, int] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, count = item.partition("@")
        operation, _, when = name.partition(":")
        if operation not in MUTATIONS or when not in WHEN:
            raise ConfigError(
                f"unknown failpoint {item!r}",
                hint=f"use <operation>:<before_call|after_call>[@n], operation one of "
                f"{', '.join(sorted(MUTATIONS))}",
            )
        try:
            nth = int(count) if count else 1
        except ValueError:
            nth = 0
        if nth < 1:
            raise ConfigError(f"bad count in failpoint {item!r}", hint="@n counts from 1")
        points[name] = nth
    return points


class Failpoints:
    """The active points of this process and how often each was reached."""

    def __init__(self, points: Mapping[str, int], kill: Callable[[], None] | None = None):
        self.points = dict(points)
        self.reached: Counter[str] = Counter()
        self._kill = kill or _sigkill_self

    @property
    def active(self) -> bool:
        return bool(self.points)

    def hit(self, operation: str, when: str) -> None:
        """Reach ``operation:when``; dies here if that is an armed point's n-th time."""
        name = f"{operation}:{when}"
        nth = self.points.get(name)
        if nth is None:
            return
        self.reached[name] += 1
        if self.reached[name] == nth:
            self._kill()

    def guard(self, api: Any) -> Any:
        """``api`` with a failpoint before and after each of its mutating methods, or ``api``
        itself when no point is armed."""
        return _Guarded(api, self) if self.active else api


class _Guarded:
    """A port whose mutating methods pass through the failpoints; everything else is the
    wrapped port's own attribute."""

    def __init__(self, api: Any, failpoints: Failpoints) -> None:
        self._api = api
        self._failpoints = failpoints

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._api, name)
        if name not in MUTATIONS:
            return target
        fp = self._failpoints

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            fp.hit(name, "before_call")
            call: Awaitable[Any] = target(*args, **kwargs)
            result = await call
            fp.hit(name, "after_call")
            return result

        return guarded


def _sigkill_self() -> None:
    # SIGKILL, not an exception: a crash test must see what a power cut leaves, with no
    # cleanup, no shielded append and no flush running on the way out.
    os.kill(os.getpid(), signal.SIGKILL)
