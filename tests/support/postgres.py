"""A real, throwaway PostgreSQL server for tests and benchmarks.

``TempPostgres`` runs the Debian packages' ``initdb`` and ``pg_ctl`` in a temporary folder,
listening on 127.0.0.1 only (no Unix socket) on a free port, with password authentication,
and removes everything when stopped. The server refuses to run as root, so as root (CI) it
runs as the system user ``glamtest``, created when missing.

Fixtures (import them into a conftest): ``postgres_server`` (one server per session) and
``postgres_url`` (a fresh database per test). Without PostgreSQL they fail and say how to
install it; ``GLAM_SKIP_POSTGRES=1`` skips them instead, loudly, except on CI.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SYSTEM_USER = "glamtest"
SKIP_VARIABLE = "GLAM_SKIP_POSTGRES"
INSTALL_HINT = (
    "PostgreSQL is not installed: `./scripts/test` installs it when run as root, or run "
    "`apt-get install -y postgresql`; without root, set GLAM_SKIP_POSTGRES=1 to skip the "
    "PostgreSQL tests knowingly"
)


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: $GLAM_PG_BINDIR, the newest
    /usr/lib/postgresql/*/bin, or the folder of ``pg_ctl`` on PATH."""
    given = os.environ.get("GLAM_PG_BINDIR")
    candidates = [Path(given)] if given else []
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _system_user() -> str | None:
    """The user the server runs as: None (this one) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        command = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
        command += ["--shell", "/usr/sbin/nologin", SYSTEM_USER]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode not in (0, 9):  # 9: created meanwhile by another run
            message = f"cannot create the user {SYSTEM_USER}: {result.stderr.strip()}"
            raise RuntimeError(message) from None
    return SYSTEM_USER


class TempPostgres:
    """One PostgreSQL server in a temporary folder; ``with TempPostgres() as server:``.

    ``fsync=False`` (tests) trades durability across a machine crash for speed; benchmarks
    keep it on so that their figures mean what they say.
    """

    def __init__(self, *, fsync: bool = False, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError(INSTALL_HINT)
        self.bindir = found
        self.fsync = fsync
        self.user = "glam"
        self.password = secrets.token_hex(12)
        self.port = 0
        self.folder: Path | None = None
        self._runas = _system_user()
        self._names = itertools.count(1)

    @property
    def data(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.folder is not None
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            user=self._runas,
            group=None if self._runas is None else pwd.getpwnam(self._runas).pw_gid,
            extra_groups=None if self._runas is None else [],
            cwd=self.folder,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )
        return result

    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="glam-pg-"))
        (self.folder / "pwfile").write_text(self.password + "\n")
        if self._runas is not None:
            shutil.chown(self.folder, self._runas)
            shutil.chown(self.folder / "pwfile", self._runas)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--pwfile", "pwfile",
            "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8",
        )  # fmt: skip
        for attempt in range(3):
            self.port = _free_port()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    "unix_socket_directories = ''\nmax_connections = 200\n"
                    f"fsync = {'on' if self.fsync else 'off'}\n"
                    f"synchronous_commit = {'on' if self.fsync else 'off'}\n"
                    f"full_page_writes = {'on' if self.fsync else 'off'}\n"
                )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", "server.log", "-w", "-t", "60",
                          "start")  # fmt: skip
                return
            except RuntimeError:
                if attempt == 2:  # the free port may have been taken meanwhile
                    raise

    def stop(self) -> None:
        if self.folder is None:
            return
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> TempPostgres:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def sql(self, statement: str, params: Any = None, *, database: str = "postgres") -> Any:
        """Run one statement as the superuser (autocommit); its rows, if it returns any."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t{next(self._names)}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TempPostgres]:
    """One PostgreSQL server for the whole session (started on first use)."""
    skip = os.environ.get(SKIP_VARIABLE) == "1"
    on_ci = os.environ.get("CI", "").lower() in ("true", "1")
    if skip and not on_ci:
        pytest.skip(f"!!! PostgreSQL tests NOT RUN: {SKIP_VARIABLE}=1 is set")
    if find_bindir() is None:
        ignored = f" ({SKIP_VARIABLE} is ignored on CI)" if skip else ""
        pytest.fail(INSTALL_HINT + ignored, pytrace=False)
    with TempPostgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: TempPostgres) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
