"""A Git repository as glam reads it: a bare mirror, fetched incrementally, read by tree path
(one commit's files through ``engine.git.snapshot.Snapshot``).

Every dulwich call runs in a worker thread (``anyio.to_thread``), one at a time per source,
behind a deadline. Dulwich, urllib3 and OS errors are translated here into
``SourceUnreachable`` (cannot reach it: retry later) or ``SourceError``, with the URL
redacted: a token never leaves this module except inside dulwich's own HTTP headers. A full
disk under the mirror is a ``SourceUnreachable`` too (``engine.git.mirror_files``).

    local path / file://   read in place when no data folder is given (``glam plan``),
                           otherwise mirrored like any remote
    http(s)://             smart HTTP; token read at every fetch: a reference resolved at
                           use time (``token``), the env var ``token_env``, or the URL's
    ssh:// or host:path    the system ssh client and its agent
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from dulwich.graph import can_fast_forward  # noqa: TID251
from dulwich.objects import Commit  # noqa: TID251
from dulwich.repo import Repo  # noqa: TID251

from engine.definitions.desired import is_lambda_file
from engine.definitions.listing import ChangedEntry
from engine.errors import SourceError, SourceUnreachable
from engine.events.repo import ChangeKind, FileChange
from engine.git import mirror_files
from engine.git.snapshot import Snapshot, decode_path, is_utf8
from engine.git.tree_diff import changed_files
from engine.git.urls import parse_repo_url, redact_url
from engine.logs import redact
from engine.redact import repository_id

T = TypeVar("T")

_CHANGE: dict[str, ChangeKind] = {"add": "added", "delete": "deleted", "modify": "modified"}


# How long closing a source waits for a network call a cancel abandoned (seconds).
_ABANDONED_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit as the observation events record it."""

    sha: str
    parents: tuple[str, ...]
    author: str
    committed_at: str  # ISO-8601 with the committer's offset
    summary: str


@dataclass(frozen=True, slots=True)
class LogResult:
    """First-parent commits after ``since`` up to the head, oldest first. ``rewritten`` when
    ``since`` is not an ancestor of the head (a force-push): then ``commits`` is just the
    head, whose tree is the desired state."""

    head: str
    commits: tuple[CommitInfo, ...]
    rewritten: bool


TokenSource = Callable[[], Awaitable[str]]
"""Reads a repository token when a fetch needs it (``engine.tokens.TokenResolver``)."""


class Mirror:
    """One repository's objects on disk: a bare mirror under the data folder, or a local
    repository read in place. The sources of several branches of one repository share one
    mirror, and its lock: every dulwich call on it runs one at a time."""

    def __init__(self, url: str, *, data_dir: Path | None = None) -> None:
        self.url = parse_repo_url(url)
        self.display_url = redact_url(url)
        self.in_place = self.url.kind == "local" and data_dir is None
        self.dir: Path | None = None
        if not self.in_place:
            if data_dir is None:
                raise SourceError(
                    f"{self.display_url} needs a data folder for its mirror",
                    hint="pass a data folder (glam's --data-dir)",
                )
            # Named after the repository's identity: every URL form of it shares one mirror.
            key = hashlib.sha256(repository_id(url).encode()).hexdigest()[:16]
            self.dir = data_dir / "mirrors" / f"{key}.git"
        # Typed Any on purpose: dulwich's NewType ids (ObjectID, Ref) change between releases
        # and every value crossing this module is converted to str at the boundary anyway.
        self.repo: Any = None
        self.lock = anyio.Lock()
        # Set while no network call runs; a cancelled one's thread runs on, abandoned, and
        # closing must wait for it (it may still open pack files).
        self.idle = threading.Event()
        self.idle.set()

    def open(self) -> Any:
        if self.repo is None:
            try:
                if self.in_place:
                    self.repo = Repo(str(self.url.local_path))
                else:
                    assert self.dir is not None
                    if (self.dir / "HEAD").exists():
                        self.repo = Repo(str(self.dir))
                    else:
                        self.repo = mirror_files.init_bare(self.dir)
            except Exception as exc:
                if mirror_files.disk_full(exc):
                    raise self.full(exc) from None
                raise SourceUnreachable(
                    f"{self.display_url}: not a git repository ({_reason(exc)})",
                    hint="check the path or URL",
                ) from None
        return self.repo

    def close(self) -> None:
        if self.repo is not None:
            self.repo.close()
            self.repo = None

    def full(self, exc: BaseException) -> SourceUnreachable:
        """``exc``, a full disk under this mirror, as the retryable error a poll reports (call
        while handling it: the files it left part-written are released first)."""
        mirror_files.release_locks(exc)
        where = self.dir if self.dir is not None else self.url.local_path
        return SourceUnreachable(
            f"{self.display_url}: the disk holding the repository's copy at {where} is full: "
            "free space on it; glam fetches again at the next poll",
            hint="free space on that disk; nothing of this repository is planned meanwhile",
        )


class GitSource:
    """One branch of one repository. Use ``await sync()`` to fetch, then the readers.

    The token of an HTTPS remote is read at every fetch: from ``token`` (a reference resolved
    at use time), else the environment variable ``token_env``, else the URL's own. ``mirror``
    shares another branch's mirror of the same repository (default: a mirror of its own).
    """

    def __init__(
        self,
        url: str,
        branch: str | None = None,
        *,
        data_dir: Path | None = None,
        token_env: str | None = None,
        token: TokenSource | None = None,
        mirror: Mirror | None = None,
        timeout: float = 60.0,
    ):
        self._mirror = mirror or Mirror(url, data_dir=data_dir)
        self._url = self._mirror.url
        self.branch = branch
        self.display_url = redact_url(url)
        self._timeout = timeout
        self._token = token
        self._token_env = token_env
        if token_env and not os.environ.get(token_env):
            raise SourceError(
                f"environment variable {token_env} is empty",
                hint=f"export {token_env} with a token that can read the repository",
            )
        self._in_place = self._mirror.in_place

    @property
    def mirror(self) -> Mirror:
        return self._mirror

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> GitSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the repository's open pack files (waits for a running operation, and a
        little for a network call abandoned by a cancel)."""
        async with self._mirror.lock:
            idle = self._mirror.idle
            if not idle.is_set():
                await anyio.to_thread.run_sync(idle.wait, _ABANDONED_WAIT)
            self.close()

    def close(self) -> None:
        self._mirror.close()

    # -- async API ---------------------------------------------------------------------------

    async def sync(self) -> str:
        """Fetch what is new and return the branch head sha. ``SourceUnreachable`` when the
        remote cannot be reached or the branch does not exist."""
        password = await self._password()
        return await self.run(lambda: self._sync_blocking(password), deadline=self._timeout)

    async def _password(self) -> str | None:
        """The token for this fetch, read now (a rotated one is picked up)."""
        if self._url.kind != "http":
            return None
        if self._token is not None:
            return await self._token()
        if self._token_env:
            token = os.environ.get(self._token_env)
            if not token:
                raise SourceUnreachable(
                    f"environment variable {self._token_env} is empty",
                    hint=f"export {self._token_env} with a token that can read the repository",
                )
            return token
        return self._url.password

    async def log_since(self, since: str | None, head: str, limit: int = 500) -> LogResult:
        return await self.run(lambda: self.log_blocking(since, head, limit))

    async def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return await self.run(lambda: self.is_ancestor_blocking(ancestor, descendant))

    async def changed_files(self, old: str | None, new: str) -> tuple[FileChange, ...]:
        return await self.run(lambda: self.changes_blocking(old, new))

    async def read_file(self, sha: str, path: str) -> bytes:
        return await self.run(lambda: self.snapshot(sha).read_file(path, referenced_from=path))

    async def run(self, fn: Callable[[], T], *, deadline: float | None = None) -> T:
        """Run blocking dulwich work in a worker thread, one at a time for this source.

        ``deadline`` (seconds) is for network work; on timeout the thread is abandoned
        (dulwich cannot be interrupted) and the caller gets ``SourceUnreachable``. The lock
        keeps a late thread from racing the next call only for as long as this call waited,
        which is why the mirror update is a single ref write.
        """
        mirror = self._mirror

        def guarded() -> T:
            try:
                return fn()
            except OSError as exc:
                if mirror_files.disk_full(exc):
                    raise mirror.full(exc) from None
                raise

        async with mirror.lock:
            if deadline is None:  # local object-store work: no network to hang on
                return await anyio.to_thread.run_sync(guarded)
            idle = mirror.idle

            def tracked() -> T:
                try:
                    return guarded()
                finally:
                    idle.set()

            idle.clear()
            try:
                with anyio.fail_after(deadline):
                    return await anyio.to_thread.run_sync(tracked, abandon_on_cancel=True)
            except TimeoutError:
                raise SourceUnreachable(
                    f"{self.display_url}: no answer within {self._timeout:g} s",
                    hint="check the network and the URL; glam retries on the next poll",
                ) from None

    # -- blocking work (worker threads only) -------------------------------------------------

    @property
    def repo(self) -> Any:
        return self._mirror.open()

    def _branch_ref(self, refs: dict[bytes, bytes], symrefs: dict[bytes, bytes]) -> bytes:
        if self.branch:
            return b"refs/heads/" + self.branch.encode()
        target = symrefs.get(b"HEAD")
        if target is None:
            raise SourceUnreachable(
                f"{self.display_url}: cannot tell the default branch",
                hint="pass --branch",
            )
        self.branch = target.decode().removeprefix("refs/heads/")
        return target

    def _sync_blocking(self, password: str | None) -> str:
        # What is fetched is rendered next: a render worker starting now (once per process)
        # is ready by then, instead of making the first plan wait for it.
        from engine.git.render import prestart

        prestart()
        if self._in_place:
            repo = self.repo
            if self.branch is None:
                names, _ = repo.refs.follow(b"HEAD")
                self.branch = names[-1].decode().removeprefix("refs/heads/")
            sha = repo.refs.as_dict().get(b"refs/heads/" + self.branch.encode())
            if sha is None:
                raise SourceUnreachable(
                    f"{self.display_url}: branch {self.branch!r} not found",
                    hint="check --branch; nothing is planned while it is missing",
                )
            return str(sha.decode())
        repo = self.repo
        try:
            kwargs: dict[str, Any] = {}
            if self._url.kind == "http":
                username = self._url.username or ("x-access-token" if password else None)
                kwargs = {"username": username, "password": password}
            location = self._url.url
            if self._url.kind == "local":
                location = str(self._url.local_path)
            # Imported on first fetch only: dulwich.client (HTTP, SSH, urllib3) is a third of
            # dulwich's import time, and reading a local repository in place never needs it.
            from dulwich.client import get_transport_and_path  # noqa: TID251

            client: Any
            client, path = get_transport_and_path(location, **kwargs)
            wanted: dict[str, bytes] = {}

            def determine_wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
                target = refs.get(b"refs/heads/" + self.branch.encode()) if self.branch else None
                if target is None and not self.branch:
                    target = refs.get(b"HEAD")
                if target is None:
                    return []
                wanted["sha"] = target
                return [] if target in repo.object_store else [target]

            result = client.fetch(path, repo, determine_wants=determine_wants)
        except SourceError:
            raise
        except Exception as exc:
            if mirror_files.disk_full(exc):
                raise self._mirror.full(exc) from None
            raise SourceUnreachable(
                f"{self.display_url}: fetch failed ({_reason(exc)})",
                hint="check the URL, the network and the token; glam retries on the next poll",
            ) from None
        ref = self._branch_ref(dict(result.refs), dict(getattr(result, "symrefs", {}) or {}))
        head: Any = dict(result.refs).get(ref)
        if head is None:
            raise SourceUnreachable(
                f"{self.display_url}: branch {self.branch!r} not found",
                hint="check --branch; nothing is planned while it is missing",
            )
        try:
            repo.refs[ref] = head
        except OSError as exc:
            if mirror_files.disk_full(exc):
                raise self._mirror.full(exc) from None
            mirror_files.release_locks(exc)
            raise SourceUnreachable(
                f"{self.display_url}: cannot update the repository's copy at "
                f"{self._mirror.dir} ({_reason(exc)})",
                hint="check the folder's permissions and its disk; glam retries on the next poll",
            ) from None
        return str(head.decode())

    def commit_info(self, sha: str) -> CommitInfo:
        commit = self._commit(sha)
        offset = timezone(timedelta(seconds=commit.commit_timezone))
        when = datetime.fromtimestamp(commit.commit_time, offset)
        message = commit.message.decode("utf-8", errors="replace")
        return CommitInfo(
            sha=sha,
            parents=tuple(p.decode() for p in commit.parents),
            author=commit.author.decode("utf-8", errors="replace"),
            committed_at=when.isoformat(),
            summary=(message.splitlines() or [""])[0][:200],
        )

    def log_blocking(self, since: str | None, head: str, limit: int = 500) -> LogResult:
        """First-parent commits after ``since`` (exclusive) up to ``head``, oldest first."""
        if since == head:
            return LogResult(head, (), False)
        chain: list[CommitInfo] = []
        sha: str | None = head
        while sha is not None and len(chain) < limit:
            if sha == since:
                return LogResult(head, tuple(reversed(chain)), False)
            info = self.commit_info(sha)
            chain.append(info)
            sha = info.parents[0] if info.parents else None
        if since is None:
            return LogResult(head, tuple(reversed(chain)), False)
        if self.is_ancestor_blocking(since, head):
            # Reached only through a merge's second parent, or more than `limit` commits
            # behind: report the head alone; the planner diffs `since..head` anyway.
            return LogResult(head, (self.commit_info(head),), False)
        return LogResult(head, (self.commit_info(head),), True)

    def is_ancestor_blocking(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        try:
            ff: Any = can_fast_forward
            return bool(ff(self.repo, ancestor.encode(), descendant.encode()))
        except KeyError:
            return False  # the old commit is gone from the mirror: history was rewritten

    def changes_blocking(self, old: str | None, new: str) -> tuple[FileChange, ...]:
        """Lambda definition files changed between two commits (``old=None``: all added)."""
        entries = self.entries_blocking(old, new)
        return tuple(FileChange(path=e.path, change=e.change) for e in entries)

    def entries_blocking(self, old: str | None, new: str) -> list[ChangedEntry]:
        """The same, saying of each whether it is a regular file with a UTF-8 name. The diff
        compares tree hashes: an unchanged folder is never read."""
        old_tree = self._tree_of(old) if old else None
        new_tree = self._tree_of(new)
        out: list[ChangedEntry] = []
        for change in changed_files(self.repo.object_store, old_tree, new_tree):
            kind = _CHANGE[change.type]
            entry = change.new if kind != "deleted" else change.old
            assert entry is not None
            path = decode_path(entry[0])
            if is_lambda_file(path):
                sides = [e for e in (change.old, change.new) if e is not None]
                regular = all(stat.S_ISREG(e[1]) for e in sides) and is_utf8(entry[0])
                out.append(ChangedEntry(path=path, change=kind, regular=regular))
        return out

    def snapshot(self, sha: str) -> Snapshot:
        return Snapshot(self.repo, self._tree_of(sha), sha)

    @property
    def repo_path(self) -> str:
        """Where the repository (or its mirror) is on disk, for the render worker processes,
        which open it themselves. Blocking on first use: call from a worker thread."""
        return str(self.repo.path)

    def _commit(self, sha: str) -> Commit:
        try:
            obj = self.repo[sha.encode()]
        except KeyError:
            # Not in the repository's copy (a fetch that did not finish, objects removed under
            # it): retryable, so a poll plans nothing and the next one reads again.
            raise SourceUnreachable(
                f"{self.display_url}: commit {sha} is missing from the repository's copy",
                hint="glam reads it again at the next poll; if it stays missing, check the "
                "repository (git fsck)",
            ) from None
        if not isinstance(obj, Commit):
            raise SourceError(f"{sha} is not a commit", hint="pass a commit sha")
        return obj

    def _tree_of(self, sha: str) -> bytes:
        return bytes(self._commit(sha).tree)


def _reason(exc: BaseException) -> str:
    """A short, redacted description of a third-party error."""
    text = str(exc) or type(exc).__name__
    return redact(text.splitlines()[0] if text else type(exc).__name__)[:300]
