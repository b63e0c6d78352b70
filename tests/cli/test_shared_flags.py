"""How ``glam run`` is told to share a PostgreSQL log: ``[engine] shared`` and ``lease_ttl``,
``--shared`` and ``--lease-ttl`` over them, and ``--db`` keeping a database URL whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.run_config import engine_config, engine_config_from, given_location, with_sharing
from engine.config import parse_config
from engine.errors import ConfigError
from engine.runtime.engine import Engine, EngineConfig

URL = "postgresql://glam@db.internal:5432/glam"


def test_the_file_says_shared_and_the_flags_win(tmp_path: Path) -> None:
    """``[engine] shared = true`` and ``lease_ttl`` reach the engine; the flags override."""
    text = "[engine]\nshared = true\nlease_ttl = 6\n[[repository]]\npath = 'r'\n"
    config = engine_config_from(parse_config(text, tmp_path / "glam.toml"))
    assert (config.shared, config.lease_ttl) == (True, 6.0)
    assert with_sharing(config, shared=False, lease_ttl=3.0).lease_ttl == 3.0
    plain = engine_config_from(parse_config("[[repository]]\npath = 'r'\n", tmp_path / "g.toml"))
    assert (plain.shared, plain.lease_ttl) == (False, 15.0)
    assert with_sharing(plain, shared=True, lease_ttl=None).shared


def test_a_database_url_stays_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A path would fold the URL's ``//``: ``--db`` and ``$GLAM_DB`` keep a URL as text."""
    monkeypatch.delenv("GLAM_DB", raising=False)
    assert given_location(URL) == URL
    assert given_location("state/glam.db") == Path("state/glam.db")
    assert given_location(None) is None
    monkeypatch.setenv("GLAM_DB", URL)
    assert given_location(None) == URL
    assert engine_config(repo="r", db=URL).db == URL


def test_sharing_an_sqlite_file_is_refused(tmp_path: Path) -> None:
    """Only PostgreSQL can be shared: the engine refuses shared mode on an SQLite file."""
    with pytest.raises(ConfigError, match="only on PostgreSQL"):
        Engine(EngineConfig(repo="r", db=tmp_path / "glam.db", shared=True))
