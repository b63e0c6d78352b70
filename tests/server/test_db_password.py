"""A PostgreSQL log's password is given by reference, never inline: ``[engine] db`` holding one
is refused in one line saying what to write, ``db_password`` names where it is, and an engine
that read it from there never shows it (logs, events, API answers, /metrics, glam's output)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anyio
import pytest

from engine.cli.query import event_json
from engine.cli.run_config import engine_config_from
from engine.config import parse_config
from engine.errors import ConfigError, ConfigFileError
from engine.runtime.engine import Engine
from engine.tokens import TokenRef
from tests.runtime.support import Setup, write_function
from tests.server.support import finished, serving
from tests.support.cli import run_glam
from tests.support.postgres import TempPostgres, postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # the fixtures of a real PostgreSQL server

VARIABLE = "GLAM_TEST_DB_PASSWORD"
REPO = "[[repository]]\npath = 'r'\n"


def _without_password(url: str, server: TempPostgres) -> str:
    bare = url.replace(f":{server.password}@", "@")
    assert server.password not in bare
    return bare


@pytest.mark.parametrize(
    "db",
    [
        pytest.param("postgresql://glam:hunter2@db.internal/glam", id="user-password"),
        pytest.param("postgres://glam:hunter2@db.internal:6432/glam", id="postgres-scheme"),
        pytest.param("postgresql://glam@db.internal/glam?password=hunter2", id="query"),
    ],
)
def test_a_password_in_the_files_db_is_refused_in_one_line(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file is refused, on one line that says what to write instead, without repeating
    the password."""
    text = f"[engine]\ndb = {json.dumps(db)}\n{REPO}"
    with pytest.raises(ConfigFileError) as refused:
        parse_config(text, tmp_path / "glam.toml")
    [line] = refused.value.problems
    assert "db must not hold the password" in line
    assert "db_password" in line
    assert "hunter2" not in line
    path = tmp_path / "glam.toml"
    path.write_text(text)
    code, out, err = run_glam(monkeypatch, capsys, "config", "check", str(path))
    assert code != 0
    assert "hunter2" not in out + err
    assert "db must not hold the password" in err


def test_the_password_is_named_by_reference(tmp_path: Path) -> None:
    """``db_password`` is a reference as a token is (a variable's name or an ARN); the URL
    stays a URL (a path would fold its ``//``), and the reference reaches the engine."""
    url = "postgresql://glam@db.internal:5432/glam"
    text = f"[engine]\ndb = '{url}'\ndb_password = '{VARIABLE}'\n{REPO}"
    glam = parse_config(text, tmp_path / "glam.toml")
    assert glam.engine.db == url
    config = engine_config_from(glam)
    assert (config.db, config.db_password) == (url, TokenRef("env", VARIABLE))
    arn = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:glam-db"
    text = f"[engine]\ndb = '{url}'\ndb_password = '{arn}'\n{REPO}"
    assert parse_config(text, tmp_path / "glam.toml").engine.db_password_ref == TokenRef(
        "secretsmanager", arn, "eu-west-1"
    )
    relative = parse_config(f"[engine]\ndb = 'state/glam.db'\n{REPO}", tmp_path / "glam.toml")
    assert relative.engine.db == tmp_path / "state" / "glam.db"
    for wrong, says in [
        (f"db = 'state/glam.db'\ndb_password = '{VARIABLE}'", "for a postgresql:// db only"),
        (f"db = '{url}'\ndb_password = 'not a name'", "neither a Secrets Manager"),
    ]:
        with pytest.raises(ConfigFileError) as refused:
            parse_config(f"[engine]\n{wrong}\n{REPO}", tmp_path / "glam.toml")
        [line] = refused.value.problems
        assert says in line


def test_config_check_names_the_passwords_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "glam.toml"
    path.write_text(
        f"[engine]\ndb = 'postgresql://glam@db.internal/glam'\ndb_password = '{VARIABLE}'\n"
        f"[[repository]]\npath = '{tmp_path}'\n"
    )
    code, out, _ = run_glam(monkeypatch, capsys, "config", "check", str(path))
    assert code == 0
    assert "log: postgresql://glam@db.internal:5432/glam" in out
    assert f"log's password: environment variable {VARIABLE}" in out
    code, out, _ = run_glam(monkeypatch, capsys, "config", "check", str(path), "--json")
    assert json.loads(out)["engine"]["db_password"] == {"kind": "env", "ref": VARIABLE}


@pytest.mark.anyio
@pytest.mark.integration
@pytest.mark.slow
async def test_an_engine_reads_the_password_where_it_is_told_and_shows_it_nowhere(
    setup: Setup,
    postgres_url: str,
    postgres_server: TempPostgres,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server asks for a password (scram): the engine gets it from the variable alone,
    deploys, and no log line, event, API answer, /metrics or glam output carries it."""
    secret = postgres_server.password
    db = _without_password(postgres_url, postgres_server)
    for name in ("PGPASSWORD", "PGPASSFILE", "GLAM_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(Path(setup.db).parent / "no-pgpass"))
    caplog.set_level(logging.DEBUG, logger="glam")
    caplog.set_level(logging.DEBUG, logger="psycopg")
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("add orders")
    password = TokenRef("env", VARIABLE)
    monkeypatch.delenv(VARIABLE, raising=False)
    with pytest.raises(ConfigError, match=f"cannot read the log's password: .*{VARIABLE}"):
        async with Engine(setup.config(db=db, db_password=password)):
            pass
    monkeypatch.setenv(VARIABLE, secret)
    shown: list[str] = []
    async with serving(setup, db=db, db_password=password) as srv:
        await srv.wait_for(finished(1))
        for path in ("/readyz", "/metrics", "/api/v1/functions", "/api/v1/deployments"):
            answer = await srv.http.get(srv.url + path, headers=srv.headers())
            shown.append(await answer.text())
        shown.append(repr(srv.engine.store))
        shown += [json.dumps(event_json(r, show_secrets=True)) for r in await srv.log()]
    monkeypatch.setenv("PGPASSWORD", secret)  # the CLI uses libpq's own ways
    outputs = {}
    for command in (["db", "info", "--db", db], ["status", "--db", db]):
        code, out, err = await anyio.to_thread.run_sync(run_glam, monkeypatch, capsys, *command)
        assert code == 0, err
        outputs[command[0]] = out
        shown += [out, err]
    assert "postgresql://glam@127.0.0.1" in outputs["db"]  # glam db info names the log
    shown += [record.getMessage() for record in caplog.records]
    assert [text for text in shown if secret in text] == []
