"""The CLI catches glam's errors once: one line and an exit code, also for an error that
leaves a task group (``async with Engine(...)``, a writable store) inside an exception group."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

import engine.runtime.engine
from engine.cli.main import first_glam_error, main
from engine.errors import GlamError, SourceError, StoreError
from engine.events import Metadata, NewEvent
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.store.records import StoredRow
from engine.store.sqlite import SqliteEventStore
from engine.testing import FakeProvider
from tests.store.helpers import HEAD_SQL, REWRITE_SQL, head_params, rewrite_params, rewritten


def test_the_first_glam_error_of_nested_groups() -> None:
    """The first GlamError, depth first, is the one reported; anything else is no GlamError."""
    first, second = SourceError("first"), StoreError("second")
    nested = ExceptionGroup("outer", [ValueError("x"), ExceptionGroup("inner", [first]), second])
    assert first_glam_error(nested) is first
    assert first_glam_error(second) is second
    assert first_glam_error(ExceptionGroup("g", [ValueError("x")])) is None
    assert first_glam_error(KeyError("k")) is None


def _log_from_a_newer_glam(db: Path) -> None:
    """A log holding an event type this glam does not know (as a newer glam would write)."""

    async def seed() -> None:
        async with SqliteEventStore(db) as store:
            issued = OperatorCommandIssued(command="abort", target="fn:1:r:x", reason="r")
            await store.append(OPS_STREAM, [NewEvent(issued, Metadata(event_id="e1"))])

    anyio.run(seed)
    with sqlite3.connect(db) as con:
        stored = StoredRow(*con.execute("SELECT * FROM events").fetchone())
        [row] = rewritten([stored], 1, type="OperatorNoteAdded")  # hashed as a writer would
        con.execute(REWRITE_SQL, rewrite_params(row))
        con.execute(HEAD_SQL, head_params(row))


def test_an_error_inside_the_engine_run_exits_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``glam run`` stopped by a GlamError inside the engine's task group prints that
    error's one line (no traceback) and exits with its code."""
    db = tmp_path / "state" / "glam.db"
    db.parent.mkdir()
    _log_from_a_newer_glam(db)
    # No AWS needed: the log stops the engine before it reads the branch or calls AWS.
    monkeypatch.setattr(engine.runtime.engine, "AwsProvider", lambda _config, **_: FakeProvider())
    argv = ["glam", "run", "--repo", str(tmp_path / "repo"), "--db", str(db), "--once"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    _, err = capsys.readouterr()
    assert exited.value.code == 1
    assert "Traceback" not in err
    assert "ExceptionGroup" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("glam: ")
    assert "OperatorNoteAdded" in last
    assert "upgrade glam" in last


def test_a_glam_error_leaving_a_writable_store_reaches_the_cli_as_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writable store runs a writer task group: an error leaving ``async with`` comes out
    as a group, and the CLI's one place still finds the GlamError in it."""

    async def body() -> None:
        async with SqliteEventStore(tmp_path / "glam.db"):
            raise SourceError("the mirror is broken", hint="delete .glam/mirror")

    with pytest.raises(BaseException) as raised:
        anyio.run(body)
    found = first_glam_error(raised.value)
    assert isinstance(found, GlamError)
    assert found.one_line() == "the mirror is broken — delete .glam/mirror"


def test_a_run_that_fails_at_once_leaves_no_empty_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first ``glam run`` that stops before recording anything (here: no AWS credentials)
    removes the log file, its lock and the folder it made for them; an existing log stays."""
    db = tmp_path / "state" / "glam.db"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    argv = ["glam", "run", "--repo", str(tmp_path / "repo"), "--db", str(db), "--once"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    _, err = capsys.readouterr()
    assert exited.value.code == 1, err
    assert "credentials" in err
    assert not (tmp_path / "state").exists()
