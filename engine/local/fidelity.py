"""What real Lambda does that moto does not: the proxy's fidelity rules.

Each rule is a switch on :class:`Fidelity`. The rules here are plain functions of data the
proxy gathered (request body, what moto says exists, the clock reading); the proxy does the I/O.

- **Pending / InProgress.** For ``pending_seconds`` after CreateFunction the function shows
  ``State: Pending``; for ``update_seconds`` after UpdateFunctionCode/Configuration it shows
  ``LastUpdateStatus: InProgress``. Meanwhile Update* and PublishVersion get 409
  ``ResourceConflictException`` with AWS's message.
- **Alias routing.** ``$LATEST`` in the routing or as the primary of a routed alias, more than
  one additional version, a weight outside [0, 1], or a version that was never published:
  400 ``InvalidParameterValueException``.
- **Referenced versions.** Deleting a version that an alias or its routing references: 409.
- **Event source mappings.** A second mapping for the same source ARN and the same
  function + qualifier (in any name form): 409.
- **Quota.** 15 requests/s per account and region shared by the control-plane APIs,
  GetFunction on its own 100/s; above it 429 ``TooManyRequestsException`` with ``Retry-After``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Monotonic = Callable[[], float]
"""Monotonic seconds. The proxy reads time only through this, so tests can drive it."""


@dataclass(frozen=True)
class Fidelity:
    """Which real-Lambda behaviours the proxy adds, and their timings."""

    pending_seconds: float = 1.0
    """How long a new function stays ``Pending`` (0 disables)."""
    update_seconds: float = 1.0
    """How long ``LastUpdateStatus`` stays ``InProgress`` after an update (0 disables)."""
    alias_rules: bool = True
    protect_referenced_versions: bool = True
    unique_event_sources: bool = True
    quota: bool = True
    control_rps: int = 15
    get_function_rps: int = 100

    @classmethod
    def off(cls) -> Fidelity:
        """Plain moto: no rule applied (the journal still records everything)."""
        return cls(
            pending_seconds=0,
            update_seconds=0,
            alias_rules=False,
            protect_referenced_versions=False,
            unique_event_sources=False,
            quota=False,
        )


@dataclass(frozen=True)
class Refusal:
    """An AWS-shaped error the proxy answers instead of forwarding."""

    status: int
    code: str
    message: str
    rule: str
    retry_after: int | None = None


@dataclass
class _Lifecycle:
    created_at: float | None = None
    updated_at: float | None = None


@dataclass
class LambdaState:
    """What the proxy remembers about Lambda beyond moto: timings and mapping identities."""

    lifecycles: dict[tuple[str, str], _Lifecycle] = field(default_factory=dict)
    # uuid -> (region, source ARN, function name, qualifier)
    mappings: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)

    def created(self, region: str, name: str, now: float) -> None:
        self.lifecycles[(region, name)] = _Lifecycle(created_at=now)

    def updated(self, region: str, name: str, now: float) -> None:
        self.lifecycles.setdefault((region, name), _Lifecycle()).updated_at = now

    def deleted(self, region: str, name: str) -> None:
        self.lifecycles.pop((region, name), None)

    def pending(self, fidelity: Fidelity, region: str, name: str, now: float) -> bool:
        life = self.lifecycles.get((region, name))
        return bool(
            life
            and life.created_at is not None
            and now < life.created_at + fidelity.pending_seconds
        )

    def in_progress(self, fidelity: Fidelity, region: str, name: str, now: float) -> bool:
        life = self.lifecycles.get((region, name))
        return bool(
            life and life.updated_at is not None and now < life.updated_at + fidelity.update_seconds
        )


def conflict_while_busy(
    fidelity: Fidelity, state: LambdaState, region: str, name: str, arn: str, now: float
) -> Refusal | None:
    """Update* and PublishVersion while the function is Pending or an update is in progress."""
    if state.pending(fidelity, region, name, now):
        return Refusal(
            409,
            "ResourceConflictException",
            "The operation cannot be performed at this time. "
            "The function is currently in the following state: Pending",
            "pending",
        )
    if state.in_progress(fidelity, region, name, now):
        return Refusal(
            409,
            "ResourceConflictException",
            "The operation cannot be performed at this time. "
            f"An update is in progress for resource: {arn}",
            "update_in_progress",
        )
    return None


def check_alias(
    version: str | None, routing: dict[str, float] | None, published: set[str]
) -> Refusal | None:
    """The alias rules for the version and routing an alias would have after the call."""

    def invalid(message: str) -> Refusal:
        return Refusal(400, "InvalidParameterValueException", message, "alias_routing")

    weights = routing or {}
    if weights and (version == "$LATEST" or "$LATEST" in weights):
        return invalid("$LATEST is not supported for an alias pointing to more than 1 version")
    if len(weights) > 1:
        return invalid(
            "Invalid parameter: the alias can route to only one additional version, "
            f"got {len(weights)}"
        )
    for routed, weight in weights.items():
        if not 0.0 <= weight <= 1.0:
            return invalid(
                f"Invalid parameter: weight {weight} of version {routed} is outside [0.0, 1.0]"
            )
    for candidate in ([version] if version else []) + list(weights):
        if candidate != "$LATEST" and candidate not in published:
            return invalid(f"Invalid parameter: version {candidate} is not published")
    return None


def referenced_version(aliases: dict[str, tuple[str, dict[str, float]]], version: str) -> list[str]:
    """Names of the aliases whose primary version or routing is ``version``."""
    return sorted(
        name
        for name, (primary, routing) in aliases.items()
        if primary == version or version in routing
    )


def duplicate_mapping(
    state: LambdaState, region: str, source: str, name: str, qualifier: str
) -> Refusal | None:
    """A second event source mapping for the same source and function + qualifier."""
    for uuid, existing in state.mappings.items():
        if existing == (region, source, name, qualifier):
            shown = name if qualifier == "$LATEST" else f"{name}:{qualifier}"
            return Refusal(
                409,
                "ResourceConflictException",
                f"The event source arn ({source}) and function ({shown}) provided mapping "
                f"already exists. Please update or delete the existing mapping with UUID {uuid}",
                "duplicate_event_source",
            )
    return None


@dataclass
class ProxyQuota:
    """The embedded AWS's request quota: a sliding one-second window per (region, bucket)
    over the calls it let through (glam's own client-side pacing is engine.aws.ratelimit)."""

    _windows: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def admit(self, region: str, bucket: str, limit: int, now: float) -> Refusal | None:
        """Count the call, or refuse it with 429 when ``limit`` calls passed in the last second."""
        window = self._windows.setdefault((region, bucket), deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= limit:
            wait = max(1, math.ceil(window[0] + 1.0 - now))
            return Refusal(
                429, "TooManyRequestsException", "Rate exceeded", "quota", retry_after=wait
            )
        window.append(now)
        return None

    def clear(self) -> None:
        self._windows.clear()
