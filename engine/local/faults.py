"""Faults the proxy injects on demand, described by one spec string.

Spec grammar (whitespace ignored; clauses separated by ``;``)::

    spec    := clause (";" clause)*
    clause  := "seed=" INT
             | OPERATION ":" rule ("," rule)*
    rule    := "throttle=" SHARE        429 TooManyRequestsException, not forwarded
             | "error=" SHARE           500 ServiceException, not forwarded
             | "apply_then_fail=" SHARE forwarded to moto (it takes effect), then 500
             | "apply_then_drop=" SHARE forwarded, then the connection is closed unanswered
             | "latency=" DURATION      added before forwarding: "50ms", "0.2s", "1" (at most 300 s)
    OPERATION := an API operation name (UpdateAlias, PublishVersion, ...) or "*" for all
    SHARE   := a probability in [0, 1]

Example: ``seed=7;UpdateAlias:throttle=0.3;PublishVersion:apply_then_fail=0.5;*:latency=50ms``.

Draws come from one ``random.Random(seed)``, in request order, so the same spec and the same
sequence of calls inject the same faults: a failing test replays. A call gets at most one
failure; rules of its own operation are consulted before ``*`` rules, and latencies add up
(to at most ``MAX_LATENCY``). A latency ends early when the proxy's clock is moved past it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal

from engine.errors import UsageError

FaultKind = Literal["throttle", "error", "apply_then_fail", "apply_then_drop"]
FAULT_KINDS: tuple[FaultKind, ...] = ("throttle", "error", "apply_then_fail", "apply_then_drop")

MAX_LATENCY = 300.0
"""The most latency one call can be given, in seconds: longer than any client waits, short
enough that a typo cannot hang the emulator for good."""


@dataclass(frozen=True)
class FaultRule:
    """Failures and latency for one operation (or ``*``)."""

    operation: str
    shares: tuple[tuple[FaultKind, float], ...] = ()
    latency: float = 0.0


@dataclass(frozen=True)
class FaultSpec:
    """A parsed spec: the seed and the rules, in the order they were written."""

    seed: int = 0
    rules: tuple[FaultRule, ...] = ()

    def __str__(self) -> str:
        clauses = [f"seed={self.seed}"]
        for rule in self.rules:
            parts = [f"{kind}={share:g}" for kind, share in rule.shares]
            if rule.latency:
                parts.append(f"latency={rule.latency * 1000:g}ms")
            clauses.append(f"{rule.operation}:{','.join(parts)}")
        return ";".join(clauses)


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one call."""

    latency: float = 0.0
    kind: FaultKind | None = None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


def _shown(text: str, limit: int = 40) -> str:
    """A piece of the spec fit to quote in an error: short, never the whole input."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _bad(message: str) -> UsageError:
    return UsageError(
        f"invalid fault spec: {message}",
        hint="write e.g. 'seed=7;UpdateAlias:throttle=0.3;*:latency=50ms' "
        "(see `glam aws-local --help`)",
    )


def parse_faults(spec: str) -> FaultSpec:
    """Parse a fault spec string; an empty string means no faults."""
    seed = 0
    rules: list[FaultRule] = []
    for raw in spec.replace(" ", "").split(";"):
        if not raw:
            continue
        if raw.startswith("seed="):
            try:
                seed = int(raw[5:])
            except ValueError:
                raise _bad(f"seed must be an integer, not {_shown(raw[5:])}") from None
            continue
        operation, sep, body = raw.partition(":")
        if not sep or not operation or not body:
            raise _bad(f"{_shown(raw)} is not OPERATION:rule=value")
        shares: list[tuple[FaultKind, float]] = []
        latency = 0.0
        for item in body.split(","):
            key, eq, value = item.partition("=")
            if not eq:
                raise _bad(f"{_shown(item)} is not rule=value")
            if key == "latency":
                m = _DURATION.match(value)
                if not m:
                    raise _bad(f"latency {_shown(value)} is not a duration like 50ms or 0.5s")
                latency += float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
                if latency > MAX_LATENCY:
                    raise _bad(f"latency of {_shown(operation)} is more than {MAX_LATENCY:g} s")
            elif key in FAULT_KINDS:
                try:
                    share = float(value)
                except ValueError:
                    raise _bad(f"{key} share {_shown(value)} is not a number") from None
                if not 0.0 <= share <= 1.0:  # NaN fails this too
                    raise _bad(f"{key} share {share} is outside [0, 1]")
                shares.append((key, share))
            else:
                raise _bad(
                    f"unknown rule {_shown(key)}; known: {', '.join((*FAULT_KINDS, 'latency'))}"
                )
        rules.append(FaultRule(operation=operation, shares=tuple(shares), latency=latency))
    return FaultSpec(seed=seed, rules=tuple(rules))


@dataclass
class FaultInjector:
    """Draws fault decisions for calls, reproducibly from the spec's seed."""

    spec: FaultSpec = field(default_factory=FaultSpec)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.spec.seed)

    def decide(self, operation: str) -> FaultDecision:
        """The latency and failure (if any) for the next call of ``operation``."""
        latency = 0.0
        kind: FaultKind | None = None
        own = [r for r in self.spec.rules if r.operation == operation]
        wild = [r for r in self.spec.rules if r.operation == "*"]
        for rule in own + wild:
            latency += rule.latency
            for rule_kind, share in rule.shares:
                # Draw even when a failure is already chosen, so one rule's outcome does not
                # shift the random sequence that the others see.
                hit = self._rng.random() < share
                if hit and kind is None:
                    kind = rule_kind
        return FaultDecision(latency=min(latency, MAX_LATENCY), kind=kind)
