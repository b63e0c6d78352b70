"""The witness: a small file outside the database that says how far the log reached.

It holds the log's first hash (which log), the head position and its hash. Writers bring it up
to date after their commits (``WitnessWriter``: off the writer's path, one write at a time,
the latest head replacing one not yet written); every open compares the log with it
(``check_witness``): a log behind it lost its last events, one that differs at the witnessed
position was rewritten, one with another first hash is another log. See
``engine.store.integrity`` for the other safeguards.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from engine.errors import StoreCorrupt, StoreError

if TYPE_CHECKING:
    from engine.store.records import StoredRow

ENV_WITNESS = "GLAM_WITNESS"


@dataclass(frozen=True, slots=True)
class WitnessRecord:
    """What a witness holds: which log (its first hash) and how far it reached."""

    log: str
    position: int
    hash: str


class Witness:
    """A witness file: written whole each time (a temporary file made durable, then renamed
    over the old one), so a crash leaves the old record or the new one, never half of one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._serial = 0

    def read(self) -> WitnessRecord | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(
                f"cannot read the witness {self.path} ({exc.strerror or exc})",
                hint=f"check --witness / ${ENV_WITNESS} and the file's permissions",
            ) from None
        try:
            note = json.loads(text)
            return WitnessRecord(str(note["log"]), int(note["position"]), str(note["hash"]))
        except (ValueError, KeyError, TypeError):
            raise StoreError(
                f"the witness {self.path} is not a glam witness",
                hint="point --witness / $GLAM_WITNESS at the file glam writes, or remove it "
                "to start a new one",
            ) from None

    def write(self, record: WitnessRecord) -> None:
        text = json.dumps(
            {
                "glam_witness": 1,
                "log": record.log,
                "position": record.position,
                "hash": record.hash,
                "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            sort_keys=True,
        )
        with self._lock:
            self._serial += 1
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{self._serial}.tmp")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, text.encode() + b"\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise StoreError(
                    f"cannot write the witness {self.path} ({exc.strerror or exc})",
                    hint="free space or fix the permissions there; the engine stops rather "
                    "than run unwitnessed",
                ) from None


def check_witness(
    record: WitnessRecord | None,
    *,
    where: str,
    witness: Path,
    last_position: int,
    first: StoredRow | None,
    at: StoredRow | None,
) -> None:
    """Refuse a log that is behind its witness, or differs from it. ``first`` and ``at`` are
    the log's rows at position 1 and at the witnessed position (None where it has none)."""
    if record is None:
        return
    hint = (
        "restore the log from a backup that reaches the witnessed position; if the log was "
        f"rolled back on purpose, move the witness {witness} aside to start a new one"
    )
    if first is not None and first.hash != record.log:
        raise StoreCorrupt(
            f"{where} is not the log its witness {witness} saw (another log, or one rewritten "
            "from its first event)",
            hint=hint,
        )
    if at is None or last_position < record.position:
        raise StoreCorrupt(
            f"{where} ends at position {last_position}, behind its witness {witness}, which saw "
            f"position {record.position}: its last events were deleted",
            hint=hint,
        )
    if at.hash != record.hash:
        raise StoreCorrupt(
            f"{where} differs from its witness {witness} at position {record.position}: the "
            "log was rewritten",
            hint=hint,
        )


class WitnessWriter:
    """Brings a witness up to date after commits, off the writer's path: one write at a time,
    and the latest head offered replaces one not yet written, so a burst of commits costs a
    few writes. ``run`` is a task of the store; ``flush`` writes what is left when it closes.
    A write that fails stops the store (the error leaves ``run``)."""

    def __init__(self, witness: Witness) -> None:
        self.witness = witness
        self.writes = 0
        self._pending: WitnessRecord | None = None
        self._wake = anyio.Event()
        self._lock = anyio.Lock()

    def offer(self, record: WitnessRecord | None) -> None:
        if record is not None:
            self._pending = record
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            await self._write_pending()

    async def flush(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._write_pending()

    async def _write_pending(self) -> None:
        async with self._lock:
            record, self._pending = self._pending, None
            if record is not None:
                await anyio.to_thread.run_sync(self.witness.write, record)
                self.writes += 1
