"""What every event shares: the frozen model base, metadata, and the recorded envelope."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base of every event and value stored in one: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EventBase(Frozen):
    """An event's data. Subclasses add ``type: Literal["StableName"]`` and their fields.

    ``SCHEMA_VERSION`` grows when the stored shape changes; an upcaster registered in
    ``engine.events.upcasters`` turns the older raw dict into the newer one before validation.
    """

    SCHEMA_VERSION: ClassVar[int] = 1


class Metadata(Frozen):
    """Who and what caused an event. ``event_id`` is made by the caller so a retried append is
    idempotent; ``commit`` and ``deployment_id`` correlate events across streams."""

    event_id: str
    actor: str = "engine"
    commit: str | None = None
    deployment_id: str | None = None
    causation_id: str | None = None
