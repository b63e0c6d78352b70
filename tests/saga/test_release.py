"""Releases (engine.saga.release): how a member reads the others' streams and judges them
(pure), and a member whose partner never comes, through the saga runner on the fake AWS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.events import Event, Metadata, NewEvent
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    Release,
    ReleaseMember,
    ReleaseMemberFailed,
    ReleaseStepReached,
    RollbackStarted,
)
from engine.saga.effects import ReleaseFailure, ReleaseWatch
from engine.saga.release import (
    RELEASE_WAIT_SECONDS,
    MemberPosition,
    Ready,
    Waiting,
    member_position,
    order,
    verdict,
)
from tests.saga.support import STREAM, World, desired, requested

pytestmark = pytest.mark.anyio

ME = ReleaseMember(stream=STREAM, deployment_id="d2")
CART = ReleaseMember(stream="fn:1:r:cart", deployment_id="c2")
SHIP = ReleaseMember(stream="fn:1:r:ship", deployment_id="s2")
RELEASE = Release(id="rel-1", name="checkout", members=(ME, CART, SHIP))


def _watch(barrier: tuple[str, int] | None) -> ReleaseWatch:
    return ReleaseWatch(RELEASE, "d2", barrier)  # type: ignore[arg-type]


def test_barriers_are_ordered_shifts_then_promote_then_finish() -> None:
    points = [("finish", 0), ("shift", 1), ("promote", 0), ("shift", 0)]
    assert sorted(points, key=order) == [  # type: ignore[arg-type]
        ("shift", 0),
        ("shift", 1),
        ("promote", 0),
        ("finish", 0),
    ]


def test_a_members_position_is_read_from_its_own_events_only() -> None:
    events: list[Event] = [
        ReleaseStepReached(deployment_id="c1", release_id="old", stage="promote"),
        ReleaseStepReached(deployment_id="c2", release_id="rel-1", stage="shift"),
        ReleaseStepReached(deployment_id="c2", release_id="rel-1", stage="shift", index=1),
    ]
    assert member_position(events, "c2") == MemberPosition(reached=("shift", 1))
    failed: list[Event] = [
        *events,
        RollbackStarted(deployment_id="c2", reason="alarm a is in ALARM"),
    ]
    assert member_position(failed, "c2").failing == "alarm a is in ALARM"
    # Read on from a known position: only the new events are folded in.
    known = member_position(events, "c2")
    done = [DeploymentFinished(deployment_id="c2", outcome="succeeded")]
    assert member_position(done, "c2", known) == MemberPosition(
        reached=("shift", 1), outcome="succeeded"
    )


def test_the_barrier_is_passed_when_every_other_member_is_at_it_or_past_it() -> None:
    at_step = MemberPosition(reached=("shift", 0))
    assert verdict(_watch(("shift", 0)), {CART: at_step, SHIP: at_step}) == Ready()
    assert verdict(_watch(("shift", 1)), {CART: at_step, SHIP: at_step}) == Waiting(
        (CART.stream, SHIP.stream)
    )
    promoted = MemberPosition(reached=("promote", 0))
    assert verdict(_watch(("shift", 1)), {CART: promoted, SHIP: at_step}) == Waiting((SHIP.stream,))
    # Finished without moving traffic (created, or nothing to publish): never waited for.
    created = MemberPosition(outcome="succeeded")
    assert verdict(_watch(("finish", 0)), {CART: created, SHIP: created}) == Ready()
    # Watching a bake (no barrier): nothing to wait for while nobody fails.
    assert verdict(_watch(None), {CART: MemberPosition(), SHIP: at_step}) == Waiting(())


def test_a_failing_member_fails_the_release_naming_the_one_that_failed_first() -> None:
    own = MemberPosition(reached=("shift", 0), failing="alarm pay-errors is in ALARM")
    followed = MemberPosition(failing="release checkout: ship rolled back: ...", followed=True)
    failure = verdict(_watch(("shift", 1)), {CART: followed, SHIP: own})
    assert failure == ReleaseFailure(
        member=SHIP.stream,
        member_deployment="s2",
        reason="ship rolled back: alarm pay-errors is in ALARM",
    )
    superseded = MemberPosition(outcome="superseded", failing="superseded by deployment x")
    failure = verdict(_watch(None), {CART: superseded, SHIP: MemberPosition()})
    assert isinstance(failure, ReleaseFailure)
    assert failure.reason == "cart superseded: superseded by deployment x"


async def test_a_member_whose_partners_never_come_rolls_back_after_the_release_wait() -> None:
    """Only this member's stream exists: it publishes, reaches the first step's barrier, waits
    RELEASE_WAIT_SECONDS for cart and ship, then rolls back naming them; no weight moved."""
    world = World()
    assert (await world.deploy("d1", desired("v1"))).succeeded
    event = requested("d2", desired("v2"), "update")
    assert isinstance(event, DeploymentRequested)
    member = event.model_copy(update={"release": RELEASE})
    await world.store.append(STREAM, [NewEvent(member, Metadata(event_id=world.next_id()))])
    started = world.clock.now()
    run = await world.run()
    (finished,) = run.finished
    assert finished.outcome == "rolled_back"
    assert finished.reason.startswith(
        "release checkout: cart, ship did not reach step 1 within 60 min"
    )
    assert world.clock.now() - started >= timedelta(seconds=RELEASE_WAIT_SECONDS)
    assert await world.weights("d2") == []  # no weight moved: nothing to set back
    [failed] = await world.events("ReleaseMemberFailed")
    assert isinstance(failed, ReleaseMemberFailed)
    assert failed.member_deployment is None
    [reached] = await world.events("ReleaseStepReached")
    assert (reached.stage, reached.index) == ("shift", 0)
