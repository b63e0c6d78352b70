"""How a release member's wait reads the other members: their function streams, each read
from where it was last read (engine.saga.release judges what they say)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.events.function import ReleaseMember
from engine.ports import EventStore
from engine.saga.effects import ReleaseFailure, ReleaseWatch
from engine.saga.release import MemberPosition, Ready, Waiting, member_position, verdict


@dataclass
class MemberReader:
    """The other members' positions, kept up to date by reading only their new events."""

    store: EventStore
    _seen: dict[ReleaseMember, tuple[int, MemberPosition]] = field(default_factory=dict)

    async def verdict(self, watch: ReleaseWatch) -> Ready | Waiting | ReleaseFailure:
        positions: dict[ReleaseMember, MemberPosition] = {}
        for member in watch.release.members:
            if member.deployment_id == watch.deployment_id:
                continue
            version, known = self._seen.get(member, (0, MemberPosition()))
            records = await self.store.read_stream(member.stream, from_version=version + 1)
            if records:
                events = (r.event for r in records)
                known = member_position(events, member.deployment_id, known)
                version = records[-1].version
                self._seen[member] = (version, known)
            positions[member] = known
        return verdict(watch, positions)
