"""One commit's files, read from the object store by tree path: ``Snapshot``, and how tree
paths become text.

No work tree is ever checked out: a path is looked up folder by folder in the commit's trees,
and a symlink, a submodule entry, a folder or a missing path is a ``DefinitionError`` rather
than something followed or guessed. A snapshot is made by ``engine.git.source.GitSource`` in
the engine, or opened by a render worker process on the repository's path
(``engine.git.render_worker``).
"""

from __future__ import annotations

import stat
from typing import Any

from dulwich.objects import S_ISGITLINK, Commit, Tree  # noqa: TID251
from dulwich.repo import Repo  # noqa: TID251

from engine.definitions.desired import is_lambda_file
from engine.errors import DefinitionError, SourceError


def is_utf8(raw: bytes) -> bool:
    """Whether a tree path's bytes are valid UTF-8."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_path(raw: bytes) -> str:
    """A tree path as text. Bytes that are not UTF-8 become ``\\xff`` escapes: lossless, so
    two different paths never read as the same one."""
    return raw.decode("utf-8", errors="backslashreplace")


class Snapshot:
    """The files of one commit, read from the object store by tree path (no work tree).

    Implements ``engine.definitions.RepoFiles``: a symlink, a submodule entry, a folder or a
    missing path is a ``DefinitionError`` rather than something followed or guessed.
    ``entries`` are (mode, blob id) of paths known already (from a listing), read directly.
    """

    def __init__(
        self, repo: Any, tree: bytes, sha: str, entries: dict[str, tuple[int, str]] | None = None
    ):
        self._repo = repo
        self._tree = tree
        self.sha = sha
        # Parsed trees by folder path, and the entries found while listing: without them every
        # read would re-parse each folder from the root (quadratic in a 5,000-folder tree).
        self._trees: dict[str, Any] = {"": repo.object_store[tree]}
        self._entries: dict[str, tuple[int, bytes]] = {
            path: (mode, blob.encode()) for path, (mode, blob) in (entries or {}).items()
        }
        # Lambda files that must not be read, with why (filled by ``lambda_files``).
        self.refused: dict[str, str] = {}

    @classmethod
    def open(
        cls, path: str, sha: str, entries: dict[str, tuple[int, str]] | None = None
    ) -> Snapshot:
        """A snapshot of commit ``sha`` of the repository at ``path`` (in a render worker)."""
        repo = Repo(path)
        commit = repo[sha.encode()]
        if not isinstance(commit, Commit):
            raise SourceError(f"{sha} is not a commit", hint="pass a commit sha")
        return cls(repo, bytes(commit.tree), sha, entries)

    def close(self) -> None:
        self._repo.close()

    def know(self, entries: dict[str, tuple[int, str]]) -> None:
        """Add (mode, blob id) of paths a listing found, so they are read directly."""
        for path, (mode, blob) in entries.items():
            self._entries[path] = (mode, blob.encode())

    def entry(self, path: str) -> tuple[int, str] | None:
        """(mode, blob id) of a listed file."""
        known = self._entries.get(path)
        return None if known is None else (known[0], known[1].decode())

    def lambda_files(self) -> list[str]:
        """Every Lambda definition file in the tree that is a regular file. The others with a
        Lambda suffix (symlinks, submodules) land in ``refused``, never silently left out: a
        definition that disappears from the listing would read as deleted."""
        out: list[str] = []
        raw_of: dict[str, bytes] = {}
        stack: list[tuple[bytes, str, bytes]] = [(self._tree, "", b"")]
        store: Any = self._repo.object_store
        while stack:
            tree_id, base, raw_base = stack.pop()
            tree = self._trees.get(base.rstrip("/")) or store[tree_id]
            assert isinstance(tree, Tree)
            self._trees[base.rstrip("/")] = tree
            for entry in tree.iteritems():
                name = decode_path(entry.path)
                if stat.S_ISDIR(entry.mode):
                    stack.append((entry.sha, f"{base}{name}/", raw_base + entry.path + b"/"))
                    continue
                if not is_lambda_file(name):
                    continue
                path, raw = base + name, raw_base + entry.path
                if raw_of.setdefault(path, raw) != raw:
                    self.refused[path] = (
                        f"{path} is the name of two different files (their names are not valid "
                        "UTF-8); rename one of them"
                    )
                elif stat.S_ISREG(entry.mode):
                    out.append(path)
                    self._entries[path] = (entry.mode, entry.sha)
                elif stat.S_ISLNK(entry.mode):
                    self.refused[path] = f"{path} is a symlink"
                else:
                    self.refused[path] = f"{path} is a submodule, not a file"
        out = sorted(p for p in out if p not in self.refused)
        return out

    def folder_files(self, folder: str) -> tuple[list[str], dict[str, str]]:
        """The Lambda files directly in ``folder`` (a path with UTF-8 names) and those refused,
        with why, as ``lambda_files`` would find them there; nothing for a missing folder."""
        tree = self._tree_at(folder)
        if tree is None:
            return [], {}
        assert isinstance(tree, Tree)
        base = f"{folder}/" if folder else ""
        out: list[str] = []
        refused: dict[str, str] = {}
        for entry in tree.iteritems():
            name = decode_path(entry.path)
            if stat.S_ISDIR(entry.mode) or not is_lambda_file(name):
                continue
            path = base + name
            if stat.S_ISREG(entry.mode) and is_utf8(entry.path):
                out.append(path)
                self._entries[path] = (entry.mode, entry.sha)
            else:
                refused[path] = "not a regular file with a UTF-8 name"
        return sorted(out), refused

    def _tree_at(self, folder: str) -> Any:
        if folder in self._trees:
            return self._trees[folder]
        parent, _, name = folder.rpartition("/")
        above = self._trees[""] if not parent else self._tree_at(parent)
        if above is None:
            return None
        try:
            mode, sha = above[name.encode()]
        except KeyError:
            return None
        if not stat.S_ISDIR(mode):
            return None
        tree = self._trees[folder] = self._repo.object_store[sha]
        return tree

    def read_file(self, path: str, *, referenced_from: str) -> bytes:
        store: Any = self._repo.object_store
        if path in self.refused:
            raise DefinitionError(self.refused[path], file=referenced_from, hint="use a file")
        known = self._entries.get(path)
        if known is not None:  # a regular file seen while listing
            return bytes(store[known[1]].as_raw_string())
        current = self._tree
        parts = path.split("/")
        for depth, part in enumerate(parts):
            folder = "/".join(parts[:depth])
            tree = self._trees.get(folder)
            if tree is None:
                tree = self._trees[folder] = store[current]
            assert isinstance(tree, Tree)
            try:
                mode, sha = tree[part.encode()]
            except KeyError:
                raise DefinitionError(
                    f"{path} does not exist in commit {self.sha[:12]}",
                    file=referenced_from,
                    hint="commit the file or fix the path",
                ) from None
            last = depth == len(parts) - 1
            if S_ISGITLINK(mode):
                raise DefinitionError(
                    f"{path} is inside a submodule",
                    file=referenced_from,
                    hint="ref files must be regular files of this repository",
                )
            if stat.S_ISLNK(mode):
                raise DefinitionError(
                    f"{path} goes through a symlink",
                    file=referenced_from,
                    hint="ref files must be regular files of this repository",
                )
            if last:
                if not stat.S_ISREG(mode):
                    raise DefinitionError(
                        f"{path} is a folder", file=referenced_from, hint="name a file"
                    )
                blob = store[sha]
                return bytes(blob.as_raw_string())
            if not stat.S_ISDIR(mode):
                raise DefinitionError(
                    f"{path} does not exist in commit {self.sha[:12]}",
                    file=referenced_from,
                    hint="commit the file or fix the path",
                )
            current = sha
        raise DefinitionError(f"{path}: empty path", file=referenced_from, hint="name a file")
