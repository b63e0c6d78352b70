"""Releases as the planner makes them and as the queries show them.

A release is the deployments one commit asks for whose deployment definitions name the same
``release`` (engine.saga.release moves them as one). The planner gives each its ``Release``:
one id, the name, and every member (function stream and deployment id), so each member's saga
knows the others from its own request. A release is not a stream of its own: what it did is
its members' deployments, and ``release_view`` puts their rows together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from engine.events.catalog import Event
from engine.events.function import DeploymentRequested, Release, ReleaseMember
from projections.deployments import DeploymentRow


def with_releases(
    events: Sequence[tuple[str, Event]], new_id: Callable[[], str]
) -> tuple[tuple[str, Event], ...]:
    """``events`` (stream, event) of one plan, each create or update whose definition names a
    release carrying that release, its members in the plan's order."""
    groups: dict[str, list[int]] = {}
    for index, (_, event) in enumerate(events):
        if isinstance(event, DeploymentRequested) and event.desired is not None:
            name = event.desired.settings.release
            if name is not None and event.action in ("create", "update"):
                groups.setdefault(name, []).append(index)
    out = list(events)
    for name in sorted(groups):
        indexes = groups[name]
        members = tuple(
            ReleaseMember(stream=events[i][0], deployment_id=_request(events[i][1]).deployment_id)
            for i in indexes
        )
        release = Release(id=new_id(), name=name, members=members)
        for i in indexes:
            stream, event = events[i]
            out[i] = (stream, event.model_copy(update={"release": release}))
    return tuple(out)


def _request(event: Event) -> DeploymentRequested:
    assert isinstance(event, DeploymentRequested)
    return event


@dataclass(frozen=True, slots=True)
class ReleaseView:
    """A release and its members' deployments as the views hold them (a member the views do
    not have yet is missing from ``rows``)."""

    release: Release
    rows: tuple[DeploymentRow, ...]

    @property
    def state(self) -> str:
        """running, rolling_back, rolled_back, succeeded or failed: rolled back when any
        member did not succeed (the others rolled back with it), running while any runs."""
        states = [r.state for r in self.rows]
        if len(self.rows) < len(self.release.members) or "running" in states:
            return "rolling_back" if "rolling_back" in states else "running"
        if "rolling_back" in states:
            return "rolling_back"
        outcomes = {r.outcome for r in self.rows}
        if outcomes <= {"succeeded"}:
            return "succeeded"
        if "rolled_back" in outcomes or "superseded" in outcomes:
            return "rolled_back"
        return "failed"

    @property
    def cause(self) -> str:
        """Why the release is rolling or rolled back: the reason of the member that failed on
        its own (the others' reasons name it), or "" when none did."""
        failing = [
            r
            for r in self.rows
            if r.state == "rolling_back" or r.outcome not in (None, "succeeded")
        ]
        own = [r for r in failing if not r.reason.startswith(f"release {self.release.name}:")]
        if not failing:
            return ""
        first = (own or failing)[0]
        return f"{first.function.split(':', 3)[-1]}: {first.reason}"

    @property
    def started_at(self) -> datetime | None:
        times = [r.requested_at for r in self.rows if r.requested_at is not None]
        return min(times) if times else None

    @property
    def commit(self) -> str | None:
        return self.rows[0].commit if self.rows else None


def release_views(
    rows: Iterable[DeploymentRow], lookup: Callable[[str], DeploymentRow | None]
) -> list[ReleaseView]:
    """The releases ``rows`` (deployments) are members of, in the order first met: each with
    every member's row, found among ``rows`` or by ``lookup`` (deployment id -> row)."""
    seen: dict[str, ReleaseView] = {}
    by_id = {r.deployment_id: r for r in rows}
    for row in by_id.values():
        release = row.release
        if release is None or release.id in seen:
            continue
        members = []
        for member in release.members:
            found = by_id.get(member.deployment_id) or lookup(member.deployment_id)
            if found is not None:
                members.append(found)
        seen[release.id] = ReleaseView(release=release, rows=tuple(members))
    return list(seen.values())


def release_json(view: ReleaseView) -> dict[str, object]:
    """A release as the API and ``glam status --json`` answer it."""
    rows = {r.deployment_id: r for r in view.rows}
    members = []
    for member in view.release.members:
        row = rows.get(member.deployment_id)
        members.append(
            {
                "function": member.stream,
                "name": member.stream.split(":", 3)[-1],
                "deployment_id": member.deployment_id,
                "state": row.state if row else "requested",
                "outcome": row.outcome if row else None,
                "weight": row.weight if row else 0.0,
                "reason": row.reason if row else "",
            }
        )
    started = view.started_at
    return {
        "id": view.release.id,
        "name": view.release.name,
        "state": view.state,
        "cause": view.cause,
        "commit": view.commit,
        "started_at": None if started is None else started.isoformat(),
        "members": members,
    }


def member_text(view: ReleaseView) -> str:
    """The members in a line: ``cart rolled_back, pay rolled_back, ship 50%``."""
    parts = []
    rows = {r.deployment_id: r for r in view.rows}
    for member in view.release.members:
        row = rows.get(member.deployment_id)
        name = member.stream.split(":", 3)[-1]
        if row is None:
            parts.append(f"{name} requested")
        elif row.outcome is not None:
            parts.append(f"{name} {row.outcome}")
        else:
            parts.append(f"{name} {row.state} {row.weight:.0%}")
    return ", ".join(parts)
