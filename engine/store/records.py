"""The stored form of an event, the hash chain over it, and the append planning both stores share.

A row is what the ``events`` table holds, column for column. Its hash is
``sha256(prev_hash + canonical_json([position, event_id, stream, version, type, schema_version,
data, metadata, recorded_at]))``: editing, deleting or reordering any stored byte of the log
changes every hash from that row on, so ``verify`` names the first position that was altered.

A keyed log (``Chain`` with a key) hashes its rows from ``keyed_from`` on with
``HMAC-SHA256(key, prev_hash + canonical_json(...))`` instead, the key kept outside the log:
whoever can write the database but not read the key cannot recompute the hashes after an edit,
so ``verify`` with the key finds a rewrite that a plain sha256 chain would let through. The log
records that it is keyed, from which position and a key id (an HMAC of a fixed text, never the
key itself); rows before ``keyed_from`` keep their sha256 hashes, so an existing log can be keyed
from its next event on.

``plan_batch`` is the pure heart of ``append``: given what is already stored, it decides for each
pending append whether it is a no-op (every ``event_id`` already stored), a conflict (stale
expected version) or new rows. The SQLite and the in-memory store both call it, which is what
keeps their semantics identical.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from engine.errors import ConcurrencyConflict, EventDecodeError, StoreError
from engine.events import Metadata, NewEvent, RecordedEvent, decode, encode
from engine.events.catalog import check_readable
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


KEY_ID_TEXT = b"glam chain key id"
MIN_KEY_BYTES = 16


def key_id(key: bytes) -> str:
    """A name for ``key`` that may be stored and shown: an HMAC of a fixed text under it, so
    two keys are told apart without revealing either."""
    return hmac.new(key, KEY_ID_TEXT, hashlib.sha256).hexdigest()[:16]


class Chain:
    """How a log's rows are hashed: sha256 throughout (the default, ``UNKEYED``), or from
    ``keyed_from`` on with an HMAC under ``key``.

    A keyed chain without its key (a reader that was not given it) still knows which rows are
    keyed: it can check their links (positions, ``prev_hash``) but not their content, and it
    cannot make new rows.
    """

    __slots__ = ("_key", "key_id", "keyed_from")

    def __init__(
        self, keyed_from: int | None = None, key: bytes | None = None, key_id: str | None = None
    ) -> None:
        self.keyed_from = keyed_from
        self._key = key
        self.key_id = key_id

    def __repr__(self) -> str:  # never the key
        if self.keyed_from is None:
            return "Chain(unkeyed)"
        have = "with its key" if self._key is not None else "without its key"
        return f"Chain(keyed from {self.keyed_from}, key id {self.key_id}, {have})"

    @property
    def keyed(self) -> bool:
        return self.keyed_from is not None

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def is_keyed_at(self, position: int) -> bool:
        return self.keyed_from is not None and position >= self.keyed_from

    def can_check(self, position: int) -> bool:
        """Whether the content of the row at ``position`` can be checked with what is known."""
        return not self.is_keyed_at(position) or self._key is not None

    def mac(self, text: str) -> str:
        """An HMAC of ``text`` under the key (to authenticate the log's own notes about its
        chain); only for a chain that has its key."""
        if self._key is None:
            raise StoreError("this log is keyed and no key was given", hint=NO_KEY_HINT)
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def digest(self, prev_hash: str, canonical: str, position: int) -> str:
        payload = (prev_hash + canonical).encode()
        if self.is_keyed_at(position):
            if self._key is None:
                raise StoreError(
                    "this log is keyed: new events cannot be chained without its key",
                    hint=NO_KEY_HINT,
                )
            return hmac.new(self._key, payload, hashlib.sha256).hexdigest()
        return hashlib.sha256(payload).hexdigest()


NO_KEY_HINT = "set $GLAM_CHAIN_KEY_FILE (or --key-file) to the file holding the log's chain key"
UNKEYED = Chain()


def _canonical(
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
    return json.dumps(
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
    chain: Chain = UNKEYED,
) -> str:
    """The chained hash of one row (see the module docstring)."""
    canonical = _canonical(
        position, event_id, stream, version, type_name, schema_version, data, metadata, recorded_at
    )
    return chain.digest(prev_hash, canonical, position)


def expected_hash(row: StoredRow, chain: Chain = UNKEYED) -> str:
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
        chain,
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
    new: NewEvent,
    *,
    stream: str,
    version: int,
    position: int,
    recorded_at: str,
    prev_hash: str,
    chain: Chain = UNKEYED,
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
        chain,
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
    building a ``StoredRow`` first: the read path of every fold. A row that cannot be read
    raises ``EventDecodeError`` naming its position (``unreadable``)."""
    position, event_id, stream, version, type_name, schema_version, data, metadata = values[:8]
    try:
        event = decode(type_name, schema_version, data)
    except Exception as exc:
        raise unreadable(values, exc) from None
    try:
        return RecordedEvent(
            position=position,
            stream=stream,
            version=version,
            event=event,
            meta=_metadata(metadata, event_id),
            recorded_at=_recorded_at(values[8]),
            hash=values[10],
        )
    except Exception as exc:
        raise unreadable(values, exc, part="metadata") from None


DAMAGED_HINT = (
    "the log is damaged there: run `glam replay --verify` to see where else, and restore the "
    "log from a backup (glam never repairs a log)"
)


def unreadable(values: Sequence[Any], exc: BaseException, part: str = "data") -> EventDecodeError:
    """The one-line error for a stored row that cannot be decoded: its position, why, and what
    to do. Never any of the row's data (it may hold a function's environment)."""
    position, type_name, schema_version = values[0], values[4], values[5]
    try:
        if part == "data":
            check_readable(str(type_name), int(schema_version))
    except (EventDecodeError, TypeError, ValueError) as newer:
        return EventDecodeError(
            f"the event at position {position} cannot be read: {newer.args[0]}",
            hint="upgrade glam if a newer one wrote this log; if none did, " + DAMAGED_HINT,
        )
    return EventDecodeError(
        f"the event at position {position} ({type_name} v{schema_version}) cannot be read: "
        f"{_reason(exc, part)}",
        hint=DAMAGED_HINT,
    )


def _reason(exc: BaseException, part: str) -> str:
    """Why a stored row failed to decode, without quoting its content."""
    cause: BaseException = exc
    while isinstance(cause, EventDecodeError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, ValidationError):
        first = cause.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            return f"its stored {part} is not valid JSON ({first['msg']})"
        where = ".".join(str(step) for step in first.get("loc", ()))
        return f"its {part} does not validate ({first['msg']}{' at ' + where if where else ''})"
    if isinstance(cause, json.JSONDecodeError):
        return f"its stored {part} is not valid JSON ({cause.msg} at character {cause.pos})"
    if isinstance(cause, EventDecodeError):
        return cause.message.split("\n", 1)[0]
    if isinstance(cause, ValueError) and part == "metadata":
        return f"its metadata or time is not what glam writes ({type(cause).__name__})"
    return f"{type(cause).__name__} while decoding its {part}"


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
    """Checks rows one at a time, in position order: contiguous positions from 1 (or from the
    ``position`` and ``hash`` it is started at), each ``prev_hash`` equal to the previous row's
    hash, each hash equal to the recomputed one. Keyed rows of a chain without its key have
    their links checked only; ``unchecked`` counts them."""

    def __init__(self, chain: Chain = UNKEYED, position: int = 0, hash: str = GENESIS_HASH) -> None:
        self.chain = chain
        self.position = position
        self.hash = hash
        self.first_bad: int | None = None
        self.reason = ""
        self.unchecked = 0

    def feed(self, row: StoredRow) -> bool:
        """False (and ``first_bad`` set) at the first row that does not check out."""
        if self.first_bad is not None:
            return False
        expected_position = self.position + 1
        if row.position != expected_position:
            self._bad(expected_position, f"position {expected_position} is missing")
        elif row.prev_hash != self.hash:
            self._bad(row.position, "does not chain to the previous event")
        elif not self.chain.can_check(row.position):
            self.unchecked += 1
            self.position = row.position
            self.hash = row.hash
            return True
        elif expected_hash(row, self.chain) != row.hash:
            self._bad(row.position, "its content does not match its hash")
        else:
            self.position = row.position
            self.hash = row.hash
            return True
        return False

    def _bad(self, position: int, reason: str) -> None:
        self.first_bad = position
        self.reason = reason


def verify_rows(rows: Iterable[StoredRow], chain: Chain = UNKEYED) -> int | None:
    """The first position whose row breaks the chain, or None when all rows check out."""
    verifier = ChainVerifier(chain)
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
    chain: Chain = UNKEYED,
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
                chain=chain,
            )
            prev = row.hash
            seen[row.event_id] = row
            plan.new_rows.append(row)
            rows.append(row)
        stream_versions[request.stream] = current
        plan.outcomes.append(rows)
    return plan
