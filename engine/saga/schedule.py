"""Traffic schedules and the saga's retry and poll policies, as data.

A schedule is the sequence of weights the NEW version gets on the alias, one per step, each
followed by a bake of ``wait_interval`` seconds (the last one too). Weights are shares in
[0, 1]; 1.0 means the alias still names the stable version but routes everything to the new
one, and the promote that follows makes the new version the alias's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.events.desired import TrafficShifting


def weights(traffic: TrafficShifting | None) -> tuple[float, ...]:
    """The weight sequence of one deployment.

    CANARY ``percent`` then 100; LINEAR ``percent``, 2x, ... capped at 100; ALL_AT_ONCE 100;
    ``None`` (no trafficShiftingConfig) is one switch with no shift steps at all: the saga
    promotes directly, without a bake.
    """
    if traffic is None:
        return ()
    # A percent outside 1..100 would make an empty or endless schedule; the definitions layer
    # rejects it, and this clamp keeps the core total if it ever slips through.
    percent = max(1, min(traffic.percent, 100))
    if traffic.type == "ALL_AT_ONCE" or percent == 100:
        return (1.0,)
    if traffic.type == "CANARY":
        return (percent / 100, 1.0)
    steps: list[float] = []
    k = 1
    while k * percent < 100:
        steps.append(k * percent / 100)
        k += 1
    steps.append(1.0)
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class StepRetry:
    """How a retryable failure of one saga step is repeated: ``max_attempts`` in all, waiting
    ``initial_backoff * multiplier**(attempt-1)`` seconds (capped) before each repeat.

    This is the saga's retry of a whole step. Each attempt is one call to the AWS adapter,
    which has its own, shorter retry of throttling and 5xx answers underneath it.
    """

    max_attempts: int = 5
    """Attempts of one step in all, the first included. A rollback step is not bounded by it:
    giving up would leave the alias shifted, so it retries for as long as it takes."""

    initial_backoff: float = 1.0
    """Seconds to wait after the first failed attempt."""

    multiplier: float = 2.0
    """How much longer each further wait is than the one before."""

    max_backoff: float = 30.0
    """The longest wait between two attempts, in seconds."""

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class SagaPolicy:
    """Everything tunable about a saga that is not in the user's deployment definition."""

    retry: StepRetry = StepRetry()
    """How a step that failed in a way that may clear is repeated, and the backoff between
    the reads that settle a step whose outcome was not recorded."""

    poll_seconds: float = 2.0
    """How often a function is read while waiting for State Active or LastUpdateStatus
    Successful (after a create, a configuration or a code update, or a conflict)."""

    max_polls: int = 150
    """Reads of such a wait (five minutes by default) before the step counts as failed. A
    rollback polls on regardless."""

    alarm_poll_seconds: float = 5.0
    """How often the alarms are read during every wait of a deployment that can roll back."""

    resolve_attempts: int = 20
    """Failed reads in all (about seven minutes with the default backoff) settling a step
    whose outcome was not recorded (a crash or a lost answer during a mutation), after which
    the deployment finishes failed and names what the operator must check. The outcome is
    never guessed, nor the step repeated."""

    resolve_refused_attempts: int = 3
    """The same bound when the last read was refused outright (AccessDenied and other errors
    that do not clear by waiting)."""


DEFAULT_POLICY = SagaPolicy()
