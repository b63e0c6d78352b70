"""What the saga asks the runner to do (effects) and what the runner reports back (outcomes).

Effects are plain data: the runner executes them generically, without knowing the saga.

    Call    one method of a port (``lambda`` = LambdaApi, ``alarms`` = AlarmsApi,
            ``sources`` = SourcesApi) with keyword arguments. A mutation carries its
            write-ahead ``intent`` (a StepStarted) that must be durable before the call.
    Wait    a durable wait until ``until``, polling ``alarms`` every ``poll_seconds``; its
            ``intent`` (a TimerStarted) is recorded first unless the timer already is.
    Record  events to append as they are: a decision that needs no I/O.
    Done    nothing left to do on this stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from engine.events import Event
from engine.events.function import FailureKind, StepStarted, TimerStarted

Api = Literal["lambda", "alarms", "sources"]


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``api.method(**args)``; ``step`` names it in the log. ``resolves`` is set when the
    call is the read that settles a dangling write-ahead step of that name."""

    step: str
    api: Api
    method: str
    args: Mapping[str, Any]
    mutation: bool
    intent: StepStarted | None = None
    resolves: str | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait until ``until``. When ``alarms`` is not empty, poll them every ``poll_seconds``
    and stop early as soon as one is in ALARM or does not exist."""

    purpose: str
    until: datetime
    alarms: tuple[str, ...] = ()
    poll_seconds: float = 5.0
    intent: TimerStarted | None = None


@dataclass(frozen=True, slots=True)
class Record:
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Done:
    pass


Effect = Call | Wait | Record | Done


@dataclass(frozen=True, slots=True)
class Ok:
    """A call returned; ``result`` is its JSON-able summary (see saga_runner.to_result)."""

    result: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failed:
    """A call raised an AwsError (or timed out), classified for the saga."""

    kind: FailureKind
    code: str
    message: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class Waited:
    """A wait ended: ``completed`` when ``until`` passed with no alarm firing and the alarms
    were read; otherwise an alarm fired or, when ``unreadable`` says why, the alarms could not
    be read (an unread alarm must not count as a quiet one). ``alarms`` holds the last state
    seen per alarm (MISSING if absent)."""

    completed: bool
    alarms: Mapping[str, str] = field(default_factory=dict)
    unreadable: str = ""


Outcome = Ok | Failed | Waited


@dataclass(frozen=True, slots=True)
class SagaContext:
    """What the pure core may not make itself: the time."""

    now: datetime
