"""Where the engine reads its repositories and its secrets from.

``BranchSources`` makes the source of each watched branch: the one source the engine was
given, the caller's factory, or by default a Git mirror under the data folder, one per
repository (``engine.git.repo_source.GitMirrors``), its HTTPS token read by reference at each
fetch.

``Secrets`` reads the engine's secret references when each is needed (``engine.tokens``), and
turns a failure into what its use calls for:

    the log's password      ``ConfigError``: the engine does not start
    a repository's token    ``SourceUnreachable``: that repository is unavailable until the
                            next poll, never an engine error
    the server's secrets    None, logged by reference only (``Engine.read_secret``)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from engine.errors import ConfigError, SourceError, SourceUnreachable
from engine.logs import get_logger
from engine.ports import RepoSource
from engine.runtime.engine_config import EngineConfig
from engine.runtime.fleet import Watch
from engine.store import is_postgres_url
from engine.tokens import TokenRef, TokenResolver

log = get_logger("engine")

SourceFactory = Callable[[Watch], RepoSource]


class Secrets:
    """The engine's secret references (see the module docstring). ``resolver`` is set once
    the engine has its ports: Secrets Manager and SSM are read through them."""

    def __init__(self) -> None:
        self.resolver: TokenResolver | None = None

    async def resolve(self, ref: TokenRef) -> str:
        """The value ``ref`` names, now (``TokenResolver.resolve``)."""
        assert self.resolver is not None
        return await self.resolver.resolve(ref)

    async def db_password(self, config: EngineConfig) -> str | None:
        """The PostgreSQL log's password, read from where ``db_password`` says (an error
        names the reference, never a value)."""
        ref = config.db_password
        if ref is None or not is_postgres_url(config.db):
            return None
        try:
            return await self.resolve(ref)
        except SourceError as exc:
            raise ConfigError(
                f"cannot read the log's password: {exc.message}", hint=exc.hint
            ) from None

    async def repository_token(self, ref: TokenRef) -> str:
        """The token ``ref`` names, now; a failure to read it makes the repository
        unavailable until the next poll (never an engine error)."""
        try:
            return await self.resolve(ref)
        except SourceUnreachable:
            raise
        except SourceError as exc:
            raise SourceUnreachable(exc.message, hint=exc.hint) from None

    async def read(self, ref: TokenRef) -> str | None:
        """The value of the secret ``ref`` names (the server's API token, its webhook secret),
        read as repository tokens are; None when it is unset or cannot be read now (logged,
        by its reference only)."""
        try:
            return await self.resolve(ref)
        except SourceError as exc:
            log.warning("cannot read %s: %s", ref.describe(), exc.one_line())
            return None


class BranchSources:
    """The source of each watched branch (see the module docstring). A source ``given`` is
    the engine's to close when it exits (``close_given``); the others close with their
    repository loop."""

    def __init__(
        self,
        config: EngineConfig,
        secrets: Secrets,
        *,
        given: RepoSource | None = None,
        factory: SourceFactory | None = None,
    ) -> None:
        self.given = given
        self._factory = factory
        self._secrets = secrets
        self._data_dir = config.data_dir or default_data_dir(config.db)
        self._mirrors: Any = None  # engine.git.repo_source.GitMirrors, made on first use

    def source_of(self, watch: Watch) -> RepoSource:
        if self.given is not None:
            return self.given
        if self._factory is not None:
            return self._factory(watch)
        from engine.git.repo_source import GitMirrors

        if self._mirrors is None:
            self._mirrors = GitMirrors(self._data_dir)
        ref = watch.token
        token = None if ref is None else (lambda: self._secrets.repository_token(ref))
        source: RepoSource = self._mirrors.source(watch.url, watch.branch, token=token)
        return source

    async def close_given(self) -> None:
        if self.given is not None:
            with anyio.CancelScope(shield=True):
                await self.given.aclose()


def default_data_dir(db: Path | str) -> Path:
    """The default folder of the mirrors: the SQLite file's, ``.glam`` for a database URL."""
    return Path(".glam") if is_postgres_url(db) else Path(db).parent
