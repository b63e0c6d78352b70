"""Traffic schedules and the saga's retry and poll policies, as data.

A schedule is the sequence of weights the NEW version gets on the alias before the promote,
one per step; the promote (the alias moved to the new version, routing cleared) is the 100 %
step itself, one UpdateAlias. Every step, the promote included, is followed by a bake of
``wait_interval`` seconds while the alarms are polled. Weights are shares in (0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.events.desired import DeploymentSettings, TrafficShifting

# The bake of a deployment with alarms but no trafficShiftingConfig (its one switch).
DEFAULT_BAKE_SECONDS = 60


def weights(traffic: TrafficShifting | None) -> tuple[float, ...]:
    """The weights before the promote.

    Custom ``steps``: their weights below 1.0 (a 1.0 step is the promote). CANARY
    ``percent``; LINEAR ``percent``, 2x, ... below 100; ALL_AT_ONCE (or a percent of 100)
    none: the promote alone. ``None`` (no trafficShiftingConfig) is the promote alone too.
    """
    if traffic is None:
        return ()
    if traffic.steps:
        return tuple(step.weight for step in traffic.steps if step.weight < 1.0)
    # A percent outside 1..100 would make an empty or endless schedule; the definitions layer
    # rejects it, and this clamp keeps the core total if it ever slips through.
    percent = max(1, min(traffic.percent, 100))
    if traffic.type == "ALL_AT_ONCE" or percent == 100:
        return ()
    if traffic.type == "CANARY":
        return (percent / 100,)
    return tuple(k * percent / 100 for k in range(1, (99 // percent) + 1))


def baked(settings: DeploymentSettings | None) -> bool:
    """Whether each step is followed by a bake: with a trafficShiftingConfig, with alarms to
    watch (one switch, then a bake with the alarms polled), or with a traffic gate (its bake
    0 s without either, then the gate's reads)."""
    return settings is not None and (
        settings.traffic is not None or bool(settings.alarms) or settings.traffic_gate is not None
    )


def bake_seconds(
    settings: DeploymentSettings | None, index: int = 0, promoted: bool = False
) -> int:
    """The bake after step ``index`` (after the promote when ``promoted``): ``waitInterval``,
    or 60 s with alarms and no config. Custom steps bake each step's own ``waitInterval``;
    the promote bakes the last step's (the 1.0 step's, or, when the list stops short of 1.0,
    the last one listed, whose bake the promote then follows)."""
    if settings is None:
        return 0
    traffic = settings.traffic
    if traffic is not None and traffic.steps:
        steps = traffic.steps
        step = steps[-1] if promoted else steps[min(index, len(steps) - 1)]
        return step.wait_interval
    if traffic is not None:
        return traffic.wait_interval
    return DEFAULT_BAKE_SECONDS if settings.alarms else 0


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
