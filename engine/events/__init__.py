"""glam's events: the union, the codec and the envelope. See docs/events.md for the catalogue."""

from engine.events.base import EventBase, Frozen, Metadata
from engine.events.catalog import (
    EVENT_ADAPTER,
    EVENT_CLASSES,
    UPCASTERS,
    Event,
    NewEvent,
    RecordedEvent,
    decode,
    encode,
    stamped,
)

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_CLASSES",
    "UPCASTERS",
    "Event",
    "EventBase",
    "Frozen",
    "Metadata",
    "NewEvent",
    "RecordedEvent",
    "decode",
    "encode",
    "stamped",
]
