"""``glam replay --at`` from the engine's snapshots shows what a fold from position 0 shows."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from engine.cli.main import main
from engine.store.sqlite import SqliteEventStore
from projections.runner import PROJECTION, ProjectionRunner
from projections.views import fold
from tests.golden.generate import rows


def _log(path: Path, every: int) -> list[object]:
    """The golden log with views (and snapshots every ``every`` events); the views at each
    position, folded from 0."""

    async def build() -> list[object]:
        async with SqliteEventStore(path) as store:
            await store.import_rows(rows())
            await ProjectionRunner(store, snapshot_every=every).catch_up()
            assert bool(await store.snapshots(PROJECTION)) == bool(every)
            records = await store.read_all()
            return [fold(records[:p]).as_json() for p in range(len(records) + 1)]

    return anyio.run(build)


def _glam(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert not exit_info.value.code, err
    return out


def test_replay_at_from_snapshots_equals_the_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "glam.db"
    expected = _log(db, every=7)
    for position in (1, 6, 7, 8, 20, 21, len(expected) - 1, 10_000):
        out = _glam(monkeypatch, capsys, "replay", "--db", str(db), "--at", str(position), "--json")
        assert json.loads(out) == expected[min(position, len(expected) - 1)]
    text = _glam(monkeypatch, capsys, "replay", "--db", str(db), "--at", "21")
    assert text.startswith("function\talias")


def test_replay_at_with_a_damaged_snapshot_folds_from_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "glam.db"
    expected = _log(db, every=7)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE snapshot_rows SET data = x'00ff'")
    # At a snapshot: its rows are decoded for printing, which finds the damage.
    monkeypatch.setattr(sys, "argv", ["glam", "replay", "--db", str(db), "--at", "21", "--json"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None)
    assert "does not decode" in err
    assert json.loads(out) == expected[21]
    # After one: the fold from it finds the damage first, and folds from 0 instead.
    out = _glam(monkeypatch, capsys, "replay", "--db", str(db), "--at", "22", "--json")
    assert json.loads(out) == expected[22]
