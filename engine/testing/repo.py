"""``MemoryRepo``: a ``RepoSource`` held in memory, for engine tests that need no Git.

It keeps commits as whole trees (path -> bytes) on one branch and answers the port exactly as
the Git adapter does: first-parent commits since the last observed one with their Lambda file
changes, a rewrite when the head no longer descends from it, the desired states of a commit
rendered by the same pure ``build_commit_state``. Tests write files and commit, as with a
work tree::

    repo = MemoryRepo()
    repo.write("apps/orders/orders_lambdadef.json", {...})
    head = repo.commit("add orders")
    repo.unavailable = "remote down"   # the next observe is Unavailable
    repo.reset(head)                   # a force-push back to ``head``
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.definitions.commit import CommitState, build_commit_state
from engine.definitions.desired import is_lambda_file
from engine.errors import DefinitionError, SourceError
from engine.events.repo import FileChange
from engine.observe import Fetched, KnownPrefixes, Observation, ObservedCommit, Unavailable


@dataclass(frozen=True, slots=True)
class _Commit:
    sha: str
    parent: str | None
    summary: str
    committed_at: str
    tree: Mapping[str, bytes]


class _Tree:
    """One commit's files, as ``engine.definitions.RepoFiles``."""

    def __init__(self, commit: _Commit) -> None:
        self._commit = commit

    def read_file(self, path: str, *, referenced_from: str) -> bytes:
        data = self._commit.tree.get(path)
        if data is None:
            raise DefinitionError(
                f"{path} does not exist in commit {self._commit.sha[:12]}",
                file=referenced_from,
                hint="commit the file or fix the path",
            )
        return data


class MemoryRepo:
    """One branch in memory. ``write``/``remove`` change the work tree, ``commit`` records it;
    ``unavailable`` (a reason) makes ``observe`` report the source unreachable; ``observed``
    counts the observations made."""

    def __init__(self, branch: str = "main", *, author: str = "Test Author") -> None:
        self._branch = branch
        self._author = author
        self._work: dict[str, bytes] = {}
        self._commits: dict[str, _Commit] = {}
        self._head: str | None = None
        self._clock = datetime(2025, 1, 1, tzinfo=UTC)
        self.unavailable: str | None = None
        self.observed = 0
        self.closed = False

    # -- the work tree, as a test changes it ----------------------------------------------

    def write(self, path: str, content: str | bytes | Any) -> None:
        """Write ``path``: bytes as they are, a str as UTF-8, anything else as JSON."""
        if isinstance(content, bytes):
            self._work[path] = content
        elif isinstance(content, str):
            self._work[path] = content.encode()
        else:
            self._work[path] = json.dumps(content, indent=2).encode()

    def remove(self, path: str) -> None:
        del self._work[path]

    def commit(self, message: str = "change") -> str:
        """Record the work tree as a new commit on the branch; its sha."""
        self._clock += timedelta(minutes=1)
        tree = dict(self._work)
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"{self._head}\0{message}\0{len(self._commits)}".encode())
        for path in sorted(tree):
            digest.update(path.encode() + b"\0" + tree[path] + b"\0")
        sha = digest.hexdigest()
        self._commits[sha] = _Commit(sha, self._head, message, self._clock.isoformat(), tree)
        self._head = sha
        return sha

    def reset(self, sha: str) -> None:
        """Move the branch (and the work tree) to ``sha``, as a force-push does."""
        self._head = sha
        self._work = dict(self._commits[sha].tree)

    @property
    def head(self) -> str | None:
        return self._head

    # -- RepoSource ---------------------------------------------------------------------------

    @property
    def branch(self) -> str | None:
        return self._branch

    async def observe(self, last_sha: str | None) -> Observation:
        self.observed += 1
        if self.unavailable is not None:
            return Unavailable(reason=self.unavailable)
        head = self._head
        if head is None:
            return Unavailable(reason=f"branch {self._branch!r} not found")
        chain: list[_Commit] = []
        sha: str | None = head
        while sha is not None and sha != last_sha:
            chain.append(self._commits[sha])
            sha = self._commits[sha].parent
        rewritten = last_sha is not None and sha is None
        if rewritten:
            base = last_sha if last_sha in self._commits else None
            return Fetched(head, (self._observed(self._commits[head], base),), rewritten=True)
        commits = tuple(self._observed(c, c.parent) for c in reversed(chain))
        return Fetched(head=head, commits=commits)

    async def commit_state(
        self,
        sha: str,
        *,
        base: str | None,
        select: Callable[[str], bool] | None = None,
        known: KnownPrefixes | None = None,
        first: tuple[str, ...] = (),
    ) -> CommitState:
        del known, first  # the whole tree is listed and rendered at once: it is in memory
        commit = self._get(sha)
        files = sorted(p for p in commit.tree if is_lambda_file(p))
        changes = self._changes(base, sha) if base is not None else None
        return build_commit_state(sha, files, _Tree(commit), changes=changes, select=select)

    async def has_commit(self, sha: str) -> bool:
        return sha in self._commits

    async def aclose(self) -> None:
        self.closed = True

    # -- helpers ------------------------------------------------------------------------------

    def _get(self, sha: str) -> _Commit:
        try:
            return self._commits[sha]
        except KeyError:
            raise SourceError(f"{sha} is not a commit", hint="pass a commit sha") from None

    def _observed(self, commit: _Commit, base: str | None) -> ObservedCommit:
        return ObservedCommit(
            sha=commit.sha,
            parents=(commit.parent,) if commit.parent else (),
            author=self._author,
            committed_at=commit.committed_at,
            summary=commit.summary,
            changes=self._changes(base, commit.sha),
        )

    def _changes(self, old: str | None, new: str) -> tuple[FileChange, ...]:
        before = self._get(old).tree if old is not None else {}
        after = self._get(new).tree
        out: list[FileChange] = []
        for path in sorted(set(before) | set(after)):
            if not is_lambda_file(path):
                continue
            if path not in before:
                out.append(FileChange(path=path, change="added"))
            elif path not in after:
                out.append(FileChange(path=path, change="deleted"))
            elif before[path] != after[path]:
                out.append(FileChange(path=path, change="modified"))
        return tuple(out)
