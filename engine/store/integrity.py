"""What a store checks beyond SQLite's pages: the chain key, the verified head, the witness.

Three safeguards, shared by the SQLite and the PostgreSQL store (the I/O is theirs, the
decisions are here):

- **The verified head.** Every store remembers the last position whose chain it verified
  (``Head``), and the log keeps the furthest one in its notes table (``glam_meta``, note
  ``verified``). A store opened by the engine checks, before anything acts on the log, that the
  row at that position still has the hash it had (a rewrite with recomputed hashes changes it)
  and that the log still reaches it (a deleted tail), then verifies every row after it, and
  again the last ``recheck`` rows before it (10,000 by default, ``$GLAM_RECHECK``; ``all`` for
  the whole log): the recent events are those of deployments in flight, which the engine is
  about to act on, and a byte changed there since it was verified is found at start. Reads
  verify any row past the head before it is decoded, and a writer verifies what others appended
  before it chains a new event onto it. Older rows are not hashed again at start (that would
  cost more than reading them): the full walk is ``glam replay --verify``.
- **The chain key** (optional): an HMAC key read from a file named by ``--key-file`` or
  ``$GLAM_CHAIN_KEY_FILE``, never stored in the log. A keyed log (note ``chain``: from which
  position, the key's id, and an HMAC over both) hashes its rows with it (``records.Chain``),
  so whoever can write the database but not read the key cannot forge a history that
  verifies. The notes of a keyed log carry an HMAC too, so its head cannot be moved past
  forged rows.
- **The witness** (optional): a small file outside the database, named by ``--witness`` or
  ``$GLAM_WITNESS``, holding the log's first hash (which log), its head position and hash. The
  writer brings it up to date after its commits (one write at a time, the latest head wins),
  and a log that is behind its witness, or differs from it at the witnessed position, is
  refused: the last events were deleted, or the log was rewritten or swapped for another.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from engine.errors import ConfigError, StoreCorrupt, StoreError
from engine.store.records import (
    GENESIS_HASH,
    MIN_KEY_BYTES,
    NO_KEY_HINT,
    UNKEYED,
    Chain,
    ChainVerifier,
    StoredRow,
    expected_hash,
    key_id,
)
from engine.store.witness import (
    ENV_WITNESS,
    Witness,
    WitnessRecord,
    WitnessWriter,
    check_witness,
)

ENV_KEY_FILE = "GLAM_CHAIN_KEY_FILE"
ENV_RECHECK = "GLAM_RECHECK"
DEFAULT_RECHECK = 10_000
CHAIN_NOTE = "chain"
HEAD_NOTE = "verified"
MAX_KEY_BYTES = 4096

BROKEN_HINT = (
    "the log was altered or damaged: stop every engine on it, see what else is with `glam "
    "replay --verify`, and restore it from a backup; glam acts on no log it cannot verify"
)


@dataclass(frozen=True)
class Integrity:
    """What a store is given: the chain key and the witness file, each optional, and how many
    rows before the verified head the engine verifies again at start."""

    key: bytes | None = field(default=None, repr=False)
    key_file: Path | None = None
    witness: Path | None = None
    recheck: int = DEFAULT_RECHECK

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Integrity:
        """``$GLAM_CHAIN_KEY_FILE``, ``$GLAM_WITNESS`` (unset or empty: none) and
        ``$GLAM_RECHECK`` (a number of events, or ``all``)."""
        env = os.environ if environ is None else environ
        key_file = Path(env[ENV_KEY_FILE]) if env.get(ENV_KEY_FILE) else None
        return cls(
            load_key(key_file) if key_file else None,
            key_file,
            Path(env[ENV_WITNESS]) if env.get(ENV_WITNESS) else None,
            _parse_recheck(env.get(ENV_RECHECK, "")),
        )

    def override(self, *, key_file: Path | None = None, witness: Path | None = None) -> Integrity:
        """These options, with what the command line gave in place of the environment's."""
        return Integrity(
            load_key(key_file) if key_file else self.key,
            key_file or self.key_file,
            witness or self.witness,
            self.recheck,
        )


def _parse_recheck(text: str) -> int:
    if not text.strip():
        return DEFAULT_RECHECK
    if text.strip() == "all":
        return 2**62
    try:
        return max(0, int(text))
    except ValueError:
        raise ConfigError(
            f"${ENV_RECHECK}={text!r} is neither a number of events nor 'all'",
            hint=f"e.g. {ENV_RECHECK}=10000, or {ENV_RECHECK}=all to verify the whole log",
        ) from None


def load_key(path: Path) -> bytes:
    """The chain key held in ``path`` (trailing whitespace dropped): at least 16 bytes. The
    messages never show any of it."""
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the chain key file {path} ({exc.strerror or exc})",
            hint=f"point --key-file or ${ENV_KEY_FILE} at a readable file",
        ) from None
    key = key.rstrip(b"\r\n\t ")
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ConfigError(
            f"the chain key file {path} holds {len(key)} bytes; a key has {MIN_KEY_BYTES} to "
            f"{MAX_KEY_BYTES}",
            hint="make one with `head -c 32 /dev/urandom | base64 > FILE` and keep it outside "
            "the database's folder",
        )
    return key


@dataclass(frozen=True, slots=True)
class Head:
    """A verified position of the chain and its hash."""

    position: int
    hash: str


GENESIS = Head(0, GENESIS_HASH)


def broken(where: str, position: int | None, reason: str) -> StoreCorrupt:
    at = f" at position {position}" if position is not None else ""
    return StoreCorrupt(f"the hash chain of {where} is broken{at}: {reason}", hint=BROKEN_HINT)


class LogIntegrity:
    """The chain of one open log and how far it is verified; the stores call it around their
    reads and writes."""

    def __init__(self, options: Integrity, where: str) -> None:
        self.options = options
        self.where = where
        self.chain: Chain = UNKEYED
        self.head = GENESIS
        self.first_hash: str | None = None  # the log's row 1, which names it for the witness
        self.key_new_log = False  # a key was given for an empty log: key it from position 1
        self.raw_chain_note: str | None = None  # as stored (a copy carries it verbatim)
        self.opened_at = 0  # the verified head the log's notes gave when it was opened
        self.walked_to = 0  # this store walked the whole chain up to here (replay --verify)

    # -- notes -------------------------------------------------------------------------------

    def load(self, notes: Mapping[str, str], *, writable: bool, last_position: int) -> None:
        """Take the chain and the verified head from the log's notes, checked against the key
        this store was given."""
        key = self.options.key
        text = notes.get(CHAIN_NOTE)
        if text is None:
            self.chain = UNKEYED
            if key is not None and writable:
                if last_position:
                    raise StoreError(
                        f"a chain key is configured but {self.where} is not keyed",
                        hint="key it from its next event on with `glam db key`, or unset "
                        f"${ENV_KEY_FILE}; if it was keyed, its note saying so was removed: "
                        "check it with `glam replay --verify`",
                    )
                self.key_new_log = True
                self.chain = Chain(1, key, key_id(key))
        else:
            self.chain = self.parse_chain(text)
        self.raw_chain_note = text
        self.head = self._parse_head(notes.get(HEAD_NOTE))
        self.opened_at = self.head.position

    def parse_chain(self, text: str) -> Chain:
        try:
            note = json.loads(text)
            keyed_from, stored_id, mac = int(note["keyed_from"]), str(note["key_id"]), note["mac"]
        except (ValueError, KeyError, TypeError):
            raise broken(self.where, None, "its note saying it is keyed is unreadable") from None
        key = self.options.key
        if key is None:
            return Chain(keyed_from, None, stored_id)
        if key_id(key) != stored_id:
            raise StoreError(
                f"{self.where} is keyed with another key (key id {stored_id}; the key given "
                f"has id {key_id(key)})",
                hint=f"point --key-file or ${ENV_KEY_FILE} at this log's key",
            )
        chain = Chain(keyed_from, key, stored_id)
        if chain.mac(_chain_text(keyed_from, stored_id)) != mac:
            raise broken(self.where, None, "its note saying from where it is keyed was altered")
        return chain

    def _parse_head(self, text: str | None) -> Head:
        if text is None:
            return GENESIS
        try:
            note = json.loads(text)
            head = Head(int(note["position"]), str(note["hash"]))
            mac = note.get("mac")
        except (ValueError, KeyError, TypeError):
            raise broken(self.where, None, "its note of the verified head is unreadable") from None
        if self.chain.keyed and self.chain.has_key and mac != self.chain.mac(_head_text(head)):
            raise broken(self.where, head.position, "its note of the verified head was altered")
        return head

    def chain_note(self) -> str:
        chain = self.chain
        assert chain.keyed_from is not None
        assert chain.key_id is not None
        return json.dumps(
            {
                "keyed_from": chain.keyed_from,
                "key_id": chain.key_id,
                "mac": chain.mac(_chain_text(chain.keyed_from, chain.key_id)),
            },
            sort_keys=True,
        )

    def head_note(self, head: Head) -> str:
        note: dict[str, object] = {"position": head.position, "hash": head.hash}
        if self.chain.keyed and self.chain.has_key:
            note["mac"] = self.chain.mac(_head_text(head))
        return json.dumps(note, sort_keys=True)

    def keyed_from_next(self, last_position: int, key: bytes) -> None:
        """Key the log from the event after ``last_position`` on (``glam db key``)."""
        if self.chain.keyed:
            raise StoreError(
                f"{self.where} is keyed already (from position {self.chain.keyed_from})",
                hint="nothing to do",
            )
        self.chain = Chain(last_position + 1, key, key_id(key))

    def require_chainable(self) -> None:
        """Refuse a keyed log to a writer without its key, before it acts on anything."""
        if self.chain.keyed and not self.chain.has_key:
            raise StoreError(
                f"{self.where} is keyed (key id {self.chain.key_id}): this glam was given no "
                "key, so it could not chain a new event",
                hint=NO_KEY_HINT,
            )

    # -- checks ------------------------------------------------------------------------------

    def check_head(self, row: StoredRow | None, last_position: int) -> None:
        """The row at the verified head must still be there with the same hash."""
        head = self.head
        if head.position == 0:
            return
        if row is None or last_position < head.position:
            raise broken(
                self.where,
                None,
                f"it ends at position {last_position}, but it was verified up to position "
                f"{head.position}: its last events were deleted",
            )
        if row.hash != head.hash:
            raise broken(
                self.where,
                head.position,
                "the event there is not the one that was verified: the log was rewritten",
            )

    def verify(self, rows: Sequence[StoredRow], head: Head | None = None) -> Head:
        """Verify ``rows``, which follow ``head`` (default: the verified head); the new head.
        Raises ``StoreCorrupt`` naming the first row that does not check out."""
        start = head or self.head
        verifier = ChainVerifier(self.chain, start.position, start.hash)
        for row in rows:
            if not verifier.feed(row):
                raise broken(self.where, verifier.first_bad, verifier.reason)
        return Head(verifier.position, verifier.hash)

    def advance(self, head: Head) -> None:
        if head.position > self.head.position:
            self.head = head

    def check_rows(self, values: Sequence[Sequence[Any]]) -> None:
        """Each row's own hash, for rows at or before the head this store opened at (those
        after it are chain-verified) and not covered by a walk of this store."""
        for values_of in values:
            position = int(values_of[0])
            if position > self.opened_at:
                return
            if position <= self.walked_to or not self.chain.can_check(position):
                continue
            row = StoredRow(*values_of)
            if expected_hash(row, self.chain) != row.hash:
                raise broken(self.where, position, "its content does not match its hash")

    def witness_record(self, head: Head) -> WitnessRecord | None:
        if self.first_hash is None or head.position == 0:
            return None
        return WitnessRecord(self.first_hash, head.position, head.hash)


def _chain_text(keyed_from: int, stored_id: str) -> str:
    return f"glam chain keyed from {keyed_from} with key {stored_id}"


def _head_text(head: Head) -> str:
    return f"glam chain verified to {head.position} {head.hash}"


class ChainChecks:
    """Mixed into both stores: the checks at open (``_open_chain``), and every row a read
    returns past the verified head verified (with the rows between, fetched as needed) before
    it is decoded."""

    _integrity: LogIntegrity
    _witness: WitnessWriter | None
    _check_rows: bool = False  # a reader: see ``_check_values``

    async def read_rows(self, from_position: int = 1, limit: int | None = None) -> list[StoredRow]:
        raise NotImplementedError

    @property
    def integrity(self) -> LogIntegrity:
        return self._integrity

    @property
    def head(self) -> Head:
        """The last position whose chain this store has verified, and its hash."""
        return self._integrity.head

    async def _offer_witness(self, head: Head) -> None:
        """After a commit that moved the head: hand it to the witness writer, if there is one."""
        if self._witness is None:
            return
        integrity = self._integrity
        if integrity.first_hash is None:  # the log's first commit: learn which log it is
            # The commit is done: a failed read must not make it look failed (the next
            # commit learns it instead).
            with contextlib.suppress(StoreError):
                first = await self.read_rows(1, 1)
                integrity.first_hash = first[0].hash if first else None
        self._witness.offer(integrity.witness_record(head))

    async def last_position(self) -> int:
        raise NotImplementedError

    async def _read_notes(self) -> dict[str, str]:
        raise NotImplementedError

    async def _write_notes(self, notes: Mapping[str, str | None]) -> None:
        """Write (None: remove) notes of the log in one transaction."""
        raise NotImplementedError

    async def _open_chain(self, *, writable: bool, engine: bool) -> None:
        """Load the chain's notes and check the log against them and the witness; the engine's
        store also verifies everything past the verified head, before anything acts on it."""
        integrity = self._integrity
        # Read in the order the log's writers advance them (the witness after a commit, the
        # head note in it, the events before it), so a writer committing meanwhile can only
        # make the later reads newer, never a record look ahead of the log.
        witness = integrity.options.witness
        record = await anyio.to_thread.run_sync(Witness(witness).read) if witness else None
        notes = await self._read_notes()
        last = await self.last_position()
        integrity.load(notes, writable=writable, last_position=last)
        if integrity.key_new_log:
            integrity.raw_chain_note = integrity.chain_note()
            await self._write_notes({CHAIN_NOTE: integrity.raw_chain_note})
        head = integrity.head
        at_head = (await self.read_rows(head.position, 1)) if head.position else []
        integrity.check_head(at_head[0] if at_head else None, last)
        first = await self.read_rows(1, 1)
        integrity.first_hash = first[0].hash if first else None
        if witness is not None and record is not None:
            at = await self.read_rows(record.position, 1)
            check_witness(
                record,
                where=integrity.where,
                witness=witness,
                last_position=last,
                first=first[0] if first else None,
                at=at[0] if at else None,
            )
        if engine:
            integrity.require_chainable()
            await self._verify_recent(head)
            verified = await self.verify_up_to(last)
            if verified.position > head.position:
                await self._write_notes({HEAD_NOTE: integrity.head_note(verified)})

    async def _verify_recent(self, head: Head, *, chunk: int = 10_000) -> None:
        """Verify again the last ``recheck`` rows up to the verified head, from the hash of
        the row before them: they must arrive at the head's hash (checked by ``check_head``)."""
        integrity = self._integrity
        if head.position == 0:
            return
        start = max(0, head.position - integrity.options.recheck)
        anchor = (await self.read_rows(start, 1))[0] if start else None
        at = Head(anchor.position, anchor.hash) if anchor else GENESIS
        while at.position < head.position:
            rows = await self.read_rows(at.position + 1, min(chunk, head.position - at.position))
            at = integrity.verify(rows, at)

    async def adopt_chain(self, note: str | None) -> None:
        """Make this empty log's chain the one ``note`` describes (a copy of a keyed log
        keeps its keying; a copy of an unkeyed one has none)."""
        if await self.last_position():
            raise StoreError(
                f"{self._integrity.where} is not empty", hint="copy into an empty database or file"
            )
        integrity = self._integrity
        integrity.chain = integrity.parse_chain(note) if note is not None else UNKEYED
        integrity.raw_chain_note = note
        await self._write_notes({CHAIN_NOTE: note})

    async def key_from_next(self, key: bytes) -> int:
        """Key this unkeyed log with ``key`` from its next event on (``glam db key``), after
        verifying all of it; the position keying starts at. Open the store without a key
        (an unkeyed log refuses a writer given one)."""
        integrity = self._integrity
        walk = await walk_chain(self, integrity.chain)
        if walk.first_bad is not None:
            raise broken(integrity.where, walk.first_bad, walk.reason)
        integrity.keyed_from_next(walk.head.position, key)
        integrity.advance(walk.head)
        note = integrity.chain_note()
        integrity.raw_chain_note = note
        await self._write_notes({CHAIN_NOTE: note, HEAD_NOTE: integrity.head_note(walk.head)})
        return walk.head.position + 1

    async def _check_values(self, values: Sequence[Sequence[Any]]) -> None:
        """``values``: rows as fetched (``COLUMNS`` order), in position order. A reader
        (``_check_rows``) also checks each row's own hash at or before the head it opened at,
        so that what it shows was not changed since: cheap for what it reads, and the
        engine's store, which reads the whole log at start, checks the recent rows instead."""
        if not values:
            return
        integrity = self._integrity
        head = integrity.head
        top = int(values[-1][0])
        if self._check_rows:
            integrity.check_rows(values)
        if top <= head.position:
            return
        fresh = [StoredRow(*row) for row in values if int(row[0]) > head.position]
        if (
            fresh[0].position == head.position + 1
            and fresh[-1].position - fresh[0].position == len(fresh) - 1
        ):
            integrity.advance(integrity.verify(fresh, head))
        else:
            await self.verify_up_to(top)

    async def verify_up_to(self, top: int, *, chunk: int = 10_000) -> Head:
        """Verify the rows from the verified head to ``top``; the new head."""
        integrity = self._integrity
        head = integrity.head
        while head.position < top:
            rows = await self.read_rows(head.position + 1, min(chunk, top - head.position))
            if not rows:
                raise broken(integrity.where, head.position + 1, "the event there is missing")
            head = integrity.verify(rows, head)
            integrity.advance(head)
        return head


@dataclass(frozen=True, slots=True)
class ChainWalk:
    """The result of walking a whole chain (``glam replay --verify``)."""

    first_bad: int | None
    reason: str
    head: Head  # the last row that checked out
    unchecked: int  # keyed rows whose content could not be checked: no key given


async def walk_chain(store: ChainChecks, chain: Chain, *, chunk: int = 10_000) -> ChainWalk:
    """Verify every row of ``store`` from position 1 under ``chain``."""
    verifier = ChainVerifier(chain)
    position = 1
    while True:
        rows = await store.read_rows(position, chunk)
        for row in rows:
            if not verifier.feed(row):
                return ChainWalk(
                    verifier.first_bad,
                    verifier.reason,
                    Head(verifier.position, verifier.hash),
                    verifier.unchecked,
                )
        if len(rows) < chunk:
            if chain is store.integrity.chain:  # what it then reads needs no second check
                store.integrity.walked_to = max(store.integrity.walked_to, verifier.position)
            return ChainWalk(None, "", Head(verifier.position, verifier.hash), verifier.unchecked)
        position = rows[-1].position + 1
