"""The keyed chain, the witness and the log's head as the commands show them: ``glam db key``
run once, ``glam replay --verify`` on a keyed log rewritten with recomputed sha256 hashes (with
the key: BROKEN at the position; without: NOT VERIFIED, never "ok"), and the head shown by
``glam status`` and ``glam db info``."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import anyio
import pytest

from engine.store.integrity import Integrity, load_key
from engine.store.records import expected_hash
from tests.store.test_integrity import fill, rehash_from, rows, sql
from tests.support.cli import run_glam

Run = tuple[pytest.MonkeyPatch, pytest.CaptureFixture[str]]


@pytest.fixture
def glam(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    monkeypatch.delenv("GLAM_CHAIN_KEY_FILE", raising=False)
    monkeypatch.delenv("GLAM_WITNESS", raising=False)
    return monkeypatch, capsys


def _run(glam: Run, *args: str) -> tuple[int, str, str]:
    return run_glam(*glam, *args)


def _key_file(tmp_path: Path) -> Path:
    key = tmp_path / "keys" / "chain.key"  # outside the log's folder
    key.parent.mkdir()
    key.write_text(base64.b64encode(b"c" * 32).decode() + "\n")
    key.chmod(0o600)
    return key


def test_a_sha256_rewrite_of_a_keyed_log_is_broken_with_the_key(tmp_path: Path, glam: Run) -> None:
    """``glam db key`` keys a log of 3 events from position 4; 4 keyed events later, event 5
    is edited and every hash from it recomputed with glam's sha256 function (the note of the
    verified head removed too). With $GLAM_CHAIN_KEY_FILE, ``replay --verify`` names position
    5; without it, it cannot vouch for the keyed events and says so. Exit 1 both times."""
    db = tmp_path / "state" / "glam.db"
    key = _key_file(tmp_path)
    anyio.run(fill, str(db), 3)
    code, out, err = _run(glam, "db", "key", "--key-file", str(key), "--db", str(db))
    assert (code, err) == (0, "")
    assert out.strip() == f"the log is keyed from position 4 on; keep {key} safe and private"
    anyio.run(fill, str(db), 4, Integrity(key=load_key(key)))
    assert len(rows(str(db))) == 7
    sql(str(db), "UPDATE events SET data = replace(data, 'reason-1', 'FORGED') WHERE position = 5")
    rehash_from(str(db), 5, expected_hash)
    sql(str(db), "DELETE FROM glam_meta WHERE key = 'verified'")

    glam[0].setenv("GLAM_CHAIN_KEY_FILE", str(key))
    code, out, err = _run(glam, "replay", "--verify", "--db", str(db))
    assert code == 1
    assert "hash chain: BROKEN at position 5: its content does not match its hash" in err
    assert "hash chain: ok" not in out

    glam[0].delenv("GLAM_CHAIN_KEY_FILE")
    code, out, err = _run(glam, "replay", "--verify", "--db", str(db))
    assert code == 1
    assert (
        "hash chain: NOT VERIFIED: keyed from position 4: the content of 4 events cannot be "
        "checked without the key (set $GLAM_CHAIN_KEY_FILE)"
    ) in err
    assert "hash chain: ok" not in out


def test_the_log_head_in_status_and_db_info(tmp_path: Path, glam: Run) -> None:
    """Both name the head's position and the start of its hash, the same as the last row's;
    ``glam status`` on stderr (its table stays clean on stdout), with how far it is verified
    and how it is chained; ``glam db info`` with the keying."""
    db = tmp_path / "state" / "glam.db"
    key = _key_file(tmp_path)
    anyio.run(fill, str(db), 4)
    head = rows(str(db))[-1].hash[:16]

    code, out, err = _run(glam, "status", "--db", str(db))
    assert code == 0
    assert f"log head: position 4, hash {head} (chain sha256, verified up to position 4)" in err
    assert "log head" not in out
    code, out, err = _run(glam, "db", "info", "--db", str(db))
    assert code == 0
    assert re.search(rf"^head +position 4, hash {head}$", out, re.MULTILINE), out
    assert re.search(r"^chain +sha256, not keyed$", out, re.MULTILINE), out

    assert _run(glam, "db", "key", "--key-file", str(key), "--db", str(db))[0] == 0
    glam[0].setenv("GLAM_CHAIN_KEY_FILE", str(key))
    anyio.run(fill, str(db), 2, Integrity(key=load_key(key)))
    head = rows(str(db))[-1].hash[:16]
    code, out, err = _run(glam, "status", "--db", str(db))
    assert code == 0
    assert re.search(
        rf"log head: position 6, hash {head} \(chain keyed from 5, key id \S+, verified up to "
        r"position 6\)",
        err,
    ), err
    code, out, err = _run(glam, "db", "info", "--db", str(db))
    assert code == 0
    assert re.search(rf"^head +position 6, hash {head}$", out, re.MULTILINE), out
    assert "keyed from position 5" in out
    assert base64.b64encode(b"c" * 32).decode() not in out + err


def test_a_truncated_tail_is_caught_by_the_witness(tmp_path: Path, glam: Run) -> None:
    """The log's last two events deleted (and the note of its verified head): ``glam db info
    --witness`` and ``replay --verify`` with $GLAM_WITNESS refuse it in one line naming both
    positions; before, ``db info`` shows what the witness saw."""
    db = tmp_path / "state" / "glam.db"
    witness = tmp_path / "witness" / "head.json"
    witness.parent.mkdir()
    anyio.run(fill, str(db), 5, Integrity(witness=witness))
    head = rows(str(db))[-1].hash[:16]
    code, out, _ = _run(glam, "db", "info", "--db", str(db), "--witness", str(witness))
    assert code == 0
    assert f"{witness}: saw position 5, hash {head} (the log matches)" in out
    sql(str(db), "DELETE FROM events WHERE position > 3")
    sql(str(db), "DELETE FROM glam_meta WHERE key = 'verified'")
    behind = f"ends at position 3, behind its witness {witness}, which saw position 5"
    code, _, err = _run(glam, "db", "info", "--db", str(db), "--witness", str(witness))
    assert code != 0
    assert behind in err
    assert "Traceback" not in err
    glam[0].setenv("GLAM_WITNESS", str(witness))
    code, out, err = _run(glam, "replay", "--verify", "--db", str(db))
    assert code != 0
    assert behind in err
    assert "hash chain: ok" not in out
