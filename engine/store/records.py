"""The stored form of an event, the hash chain over it, and the append planning both stores share.

A row is what the ``events`` table holds, column for column. Its hash is
``sha256(prev_hash + canonical_json([position, event_id, stream, version, type, schema_version,
data, metadata, recorded_at]))``: editing, deleting or reordering any stored byte of the log
changes every hash from that row on, so ``verify`` names the first position that was altered.

``plan_batch`` is the pure heart of ``append``: given what is already stored, it decides for each
pending append whether it is a no-op (every ``event_id`` already stored), a conflict (stale
expected version) or new rows. The SQLite and the in-memory store both call it, which is what
keeps their semantics identical.
"""

from __future__ import annotations

import gc
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import ConcurrencyConflict
from engine.events import Metadata, NewEvent, RecordedEvent, decode, encode
from engine.ports import ANY_VERSION

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One row of the ``events`` table."""

    position: int
    event_id: str
    stream: str
    version: int
    type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: str
    prev_hash: str
    hash: str

    def as_tuple(self) -> tuple[int, str, str, int, str, int, str, str, str, str, str]:
        return (
            self.position,
            self.event_id,
            self.stream,
            self.version,
            self.type,
            self.schema_version,
            self.data,
            self.metadata,
            self.recorded_at,
            self.prev_hash,
            self.hash,
        )


COLUMNS = (
    "position, event_id, stream, version, type, schema_version, data, metadata, "
    "recorded_at, prev_hash, hash"
)


def row_hash(
    prev_hash: str,
    position: int,
    event_id: str,
    stream: str,
    version: int,
    type_name: str,
    schema_version: int,
    data: str,
    metadata: str,
    recorded_at: str,
) -> str:
    """The chained hash of one row (see the module docstring)."""
    canonical = json.dumps(
        [
            position,
            event_id,
            stream,
            version,
            type_name,
            schema_version,
            data,
            metadata,
            recorded_at,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def expected_hash(row: StoredRow) -> str:
    return row_hash(
        row.prev_hash,
        row.position,
        row.event_id,
        row.stream,
        row.version,
        row.type,
        row.schema_version,
        row.data,
        row.metadata,
        row.recorded_at,
    )


def format_time(moment: datetime) -> str:
    """Recorded times are stored as UTC ISO-8601 with microseconds: fixed width, sortable."""
    if moment.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def encode_metadata(meta: Metadata) -> str:
    # event_id has its own column; the rest is canonical JSON so the hash is reproducible.
    data = meta.model_dump(mode="json", exclude={"event_id"})
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def make_row(
    new: NewEvent, *, stream: str, version: int, position: int, recorded_at: str, prev_hash: str
) -> StoredRow:
    type_name, schema_version, data = encode(new.event)
    metadata = encode_metadata(new.meta)
    event_id = new.meta.event_id
    digest = row_hash(
        prev_hash,
        position,
        event_id,
        stream,
        version,
        type_name,
        schema_version,
        data,
        metadata,
        recorded_at,
    )
    return StoredRow(
        position,
        event_id,
        stream,
        version,
        type_name,
        schema_version,
        data,
        metadata,
        recorded_at,
        prev_hash,
        digest,
    )


def to_recorded(row: StoredRow) -> RecordedEvent:
    """Decode a stored row; an unknown type or future schema version raises
    ``EventDecodeError`` (never skipped)."""
    return decode_values(row.as_tuple())


_gc_pauses = 0  # sections inside gc_paused() right now, across tasks and threads
_gc_was_enabled = False
_gc_lock = threading.Lock()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a fold decodes and applies events.

    A fold allocates millions of small objects that live on in the views, and every burst of
    allocations triggers collections that walk all of them again: at a million events that
    cost more than decoding and applying together, and grew with the size of the views.
    Events and view rows hold no reference cycles (refcounting frees them at once), so
    collecting after the fold instead of during it loses nothing. Sections may nest and may
    overlap across tasks: the collector comes back on when the last one ends, and only if it
    was on when the first began.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def decode_values(values: Sequence[Any]) -> RecordedEvent:
    """``to_recorded`` straight from a row's column values (``COLUMNS`` order), without
    building a ``StoredRow`` first: the read path of every fold."""
    position, event_id, stream, version, type_name, schema_version, data, metadata = values[:8]
    return RecordedEvent(
        position=position,
        stream=stream,
        version=version,
        event=decode(type_name, schema_version, data),
        meta=_metadata(metadata, event_id),
        recorded_at=_recorded_at(values[8]),
        hash=values[10],
    )


# Stored metadata repeats a lot (every event of one deployment shares actor, commit and
# deployment id; a group commit shares one recorded_at), so each distinct text is parsed once
# and reused; the dict is still validated per event (with its own event_id), which costs about
# as much as the copy it replaces. The caches are bounded (cleared when full) and never stale:
# the key is the exact stored text.
_CACHE_MAX = 4_096
_META_CACHE: dict[str, dict[str, Any]] = {}
_TIME_CACHE: dict[str, datetime] = {}
_META_VALIDATOR = Metadata.__pydantic_validator__


def _metadata(text: str, event_id: str) -> Metadata:
    fields = _META_CACHE.get(text)
    if fields is None:
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError(f"stored metadata is not a JSON object: {text[:80]!r}")
        if len(_META_CACHE) >= _CACHE_MAX:
            _META_CACHE.clear()
        _META_CACHE[text] = fields
    meta: Metadata = _META_VALIDATOR.validate_python({**fields, "event_id": event_id})
    return meta


def _recorded_at(text: str) -> datetime:
    moment = _TIME_CACHE.get(text)
    if moment is None:
        moment = datetime.fromisoformat(text)
        if len(_TIME_CACHE) >= _CACHE_MAX:
            _TIME_CACHE.clear()
        _TIME_CACHE[text] = moment
    return moment


class ChainVerifier:
    """Checks rows one at a time, in position order: contiguous positions from 1, each
    ``prev_hash`` equal to the previous row's hash, each hash equal to the recomputed one."""

    def __init__(self) -> None:
        self.position = 0
        self.hash = GENESIS_HASH
        self.first_bad: int | None = None
        self.reason = ""

    def feed(self, row: StoredRow) -> bool:
        """False (and ``first_bad`` set) at the first row that does not check out."""
        if self.first_bad is not None:
            return False
        expected_position = self.position + 1
        if row.position != expected_position:
            self._bad(expected_position, f"position {expected_position} is missing")
        elif row.prev_hash != self.hash:
            self._bad(row.position, "does not chain to the previous event")
        elif expected_hash(row) != row.hash:
            self._bad(row.position, "its content does not match its hash")
        else:
            self.position = row.position
            self.hash = row.hash
            return True
        return False

    def _bad(self, position: int, reason: str) -> None:
        self.first_bad = position
        self.reason = reason


def verify_rows(rows: Iterable[StoredRow]) -> int | None:
    """The first position whose row breaks the chain, or None when all rows check out."""
    verifier = ChainVerifier()
    for row in rows:
        if not verifier.feed(row):
            break
    return verifier.first_bad


@dataclass(frozen=True, slots=True)
class AppendRequest:
    stream: str
    events: Sequence[NewEvent]
    expected_version: int


@dataclass(slots=True)
class BatchPlan:
    """What ``plan_batch`` decided: per request either its rows (stored or new) or an error,
    and the new rows to insert, in position order."""

    outcomes: list[list[StoredRow] | ConcurrencyConflict]
    new_rows: list[StoredRow]


def plan_batch(
    requests: Sequence[AppendRequest],
    *,
    existing: Mapping[str, StoredRow],
    versions: Mapping[str, int],
    last_position: int,
    last_hash: str,
    recorded_at: str,
) -> BatchPlan:
    """Decide a batch of appends against the stored state (pure).

    Requests are applied in order, each seeing the ones before it. A request whose every
    ``event_id`` is already stored is a no-op returning the stored rows, whatever its expected
    version (a retry of an append that did succeed). Otherwise the expected version is checked
    and the new events get the next versions and positions; already stored ids inside it are
    returned as stored.
    """
    seen: dict[str, StoredRow] = {}
    stream_versions = dict(versions)
    position = last_position
    prev = last_hash
    plan = BatchPlan(outcomes=[], new_rows=[])
    for request in requests:
        ids = [new.meta.event_id for new in request.events]
        known = {i: seen.get(i) or existing.get(i) for i in ids}
        if request.events and all(known.values()):
            plan.outcomes.append([row for row in known.values() if row is not None])
            continue
        current = stream_versions.get(request.stream, 0)
        expected = request.expected_version
        if expected != ANY_VERSION and expected != current:
            plan.outcomes.append(
                ConcurrencyConflict(
                    f"stream {request.stream} is at version {current}, expected {expected}",
                    hint="re-read the stream and decide again",
                )
            )
            continue
        rows: list[StoredRow] = []
        for new in request.events:
            stored = seen.get(new.meta.event_id) or existing.get(new.meta.event_id)
            if stored is not None:
                rows.append(stored)
                continue
            current += 1
            position += 1
            row = make_row(
                new,
                stream=request.stream,
                version=current,
                position=position,
                recorded_at=recorded_at,
                prev_hash=prev,
            )
            prev = row.hash
            seen[row.event_id] = row
            plan.new_rows.append(row)
            rows.append(row)
        stream_versions[request.stream] = current
        plan.outcomes.append(rows)
    return plan
