"""How the saga runner waits: until a wait's end, polling its alarms, sending a traffic gate's
synthetic invocations meanwhile, and, for a release member, reading the other members
(engine.runtime.release_watch); a wait also ends early when its stream moved on. Mixed into
the runner of engine.runtime.saga_runner, whose ports and stream these are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio

from engine.errors import AwsError
from engine.events import Event
from engine.events.function import AlarmObserved, StepSucceeded
from engine.ports import AlarmReadingsApi, AlarmsApi, Clock, EventStore, LambdaApi
from engine.runtime.release_watch import MemberReader
from engine.saga.effects import Probe, ReleaseFailure, Wait, Waited
from engine.saga.release import Ready, Waiting, timed_out
from engine.saga.state import ALARM_CHECK, OPERATOR_PROMOTE

# Polls past the end of a bake to wait for a successful alarm read before rolling back.
UNREAD_GRACE_POLLS = 3
# Waits whose quiet end vouches for the new version: their alarms' readings are recorded.
_READ_AT_END = frozenset({"bake", OPERATOR_PROMOTE, ALARM_CHECK})

# When a wait's alarms had to be read, for the reason of a wait that could not read them.
_WHEN_READ: dict[str, str] = {
    ALARM_CHECK: "before any traffic moved",
    OPERATOR_PROMOTE: "before the promote",
}


class Waits:
    """The waits of one stream's runner (its ports, its stream and the version it knows)."""

    stream: str
    store: EventStore
    lambda_api: LambdaApi
    alarms: AlarmsApi
    clock: Clock
    call_timeout: float
    version: int
    members: MemberReader

    async def with_readings(
        self, wait: Wait, outcome: Waited, events: list[Event], started: datetime
    ) -> list[Event]:
        """``events`` with what the alarms' evaluation saw since ``started``: each alarm
        observation the saga records gets its metric and datapoints, and a watched wait that
        ended quietly records an observation of each metric alarm whose metric had
        datapoints (engine.events.alarms). Best effort: a failed read records the states
        alone, as before; nothing the saga decided depends on it."""
        if not wait.alarms or not isinstance(self.alarms, AlarmReadingsApi):
            return events
        quiet = outcome.completed and wait.purpose in _READ_AT_END
        fired = any(isinstance(e, AlarmObserved) for e in events)
        if not quiet and not fired:
            return events
        try:
            with anyio.fail_after(self.call_timeout):
                readings = await self.alarms.alarm_readings(
                    list(wait.alarms), started, self.clock.now()
                )
        except (AwsError, TimeoutError):
            return events
        out: list[Event] = []
        for event in events:
            if quiet and isinstance(event, StepSucceeded):
                out += [
                    AlarmObserved(
                        deployment_id=event.deployment_id,
                        alarm=name,
                        state=outcome.alarms.get(name, "INSUFFICIENT_DATA"),
                        metric=metric,
                        datapoints=points,
                    )
                    for name, (metric, points) in sorted(readings.items())
                    if points
                ]
            if isinstance(event, AlarmObserved) and event.alarm in readings:
                metric, points = readings[event.alarm]
                event = event.model_copy(update={"metric": metric, "datapoints": points})
            out.append(event)
        return out

    async def wait(self, wait: Wait) -> Waited | None:
        """Wait until ``wait.until``, polling alarms (and sending its probe's synthetic
        traffic meanwhile); None when the stream changed meanwhile (a newer request may be
        waiting for this safe point)."""
        if wait.probe is None:
            return await self._wait(wait)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._probe, wait.probe, name=f"glam probe {wait.probe.function}")
            waited = await self._wait(wait)
            tg.cancel_scope.cancel()
        return waited

    async def _probe(self, probe: Probe) -> None:
        """Invoke ``probe.function`` at ``probe.rate_per_second`` until cancelled. An answer
        is not judged here: a failing invocation shows in the function's metrics, which its
        alarms watch. A call refused for good (the alias is gone, no permission) stops it."""
        pause = 1.0 / probe.rate_per_second
        while True:
            started = self.clock.monotonic()
            try:
                with anyio.fail_after(self.call_timeout):
                    await self.lambda_api.invoke(probe.function, probe.payload)
            except AwsError as exc:
                if not exc.retryable:
                    return
            except TimeoutError:
                pass
            except Exception:  # synthetic traffic must never end the wait it runs beside
                return
            await self.clock.sleep(max(0.0, pause - (self.clock.monotonic() - started)))

    async def _wait(self, wait: Wait) -> Waited | None:
        names = list(wait.alarms)
        states: dict[str, str] = {}
        poll = timedelta(seconds=wait.poll_seconds)
        # A bake vouches for the new version only if its alarms were read near its end: an
        # alarm nobody could read is not a quiet alarm. Retryable read errors are retried
        # every poll, for a few polls past the end; a non-retryable one ends the wait at once.
        must_read = bool(names) and wait.purpose in ("bake", OPERATOR_PROMOTE, ALARM_CHECK)
        give_up = wait.until + poll * UNREAD_GRACE_POLLS
        last_read: datetime | None = None
        last_error = "no read attempted"
        while True:
            if names:
                seen: dict[str, str] | None = None
                try:
                    with anyio.fail_after(self.call_timeout):
                        seen = await self.alarms.alarm_states(names)
                except AwsError as exc:
                    last_error = f"{exc.code or type(exc).__name__}: {exc.message}"
                    if not exc.retryable:
                        return Waited(
                            completed=False,
                            alarms=states,
                            unreadable=f"alarms {', '.join(names)} cannot be read ({last_error})",
                        )
                except TimeoutError:
                    last_error = f"no answer within {self.call_timeout:g}s"
                if seen is not None:
                    last_read = self.clock.now()
                    states = {name: seen.get(name, "MISSING") for name in names}
                    if any(s in ("ALARM", "MISSING") for s in states.values()):
                        return Waited(completed=False, alarms=states)
            if wait.release is not None and (ended := await self._release(wait, states)):
                return ended
            now = self.clock.now()
            if now >= wait.until:
                fresh = last_read is not None and last_read >= wait.until - poll
                if not must_read or fresh:
                    return Waited(completed=True, alarms=states)
                if now >= give_up:
                    return Waited(
                        completed=False,
                        alarms=states,
                        unreadable=(
                            f"alarms {', '.join(names)} were not read successfully "
                            f"{_WHEN_READ.get(wait.purpose, 'near the end of the bake')} (last "
                            f"error {last_error}); not moving traffic unwatched"
                        ),
                    )
            if await self.store.stream_version(self.stream) != self.version:
                return None
            # Wake at every poll even without alarms, to notice a newer request in the stream.
            deadline = wait.until if now < wait.until else give_up
            await self.clock.sleep_until(min(deadline, now + poll))

    async def _release(self, wait: Wait, states: dict[str, str]) -> Waited | None:
        """How the other members of a release end this wait, if they do: one failed (roll
        back with it), or every one reached the barrier this member waits at (go on), or
        they did not in time (roll back)."""
        watch = wait.release
        assert watch is not None
        judged = await self.members.verdict(watch)
        if isinstance(judged, ReleaseFailure):
            return Waited(completed=False, alarms=states, release_failed=judged)
        if watch.barrier is None:
            return None
        if isinstance(judged, Ready):
            return Waited(completed=True, alarms=states)
        if self.clock.now() >= wait.until and isinstance(judged, Waiting):
            return Waited(completed=False, alarms=states, release_failed=timed_out(watch, judged))
        return None
