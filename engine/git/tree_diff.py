"""The files changed between two trees, as dulwich's ``tree_changes`` reports them, without
walking the entries two trees share.

``tree_changes`` merges the sorted entries of every pair of trees it compares in Python, one
object per entry: comparing two commits of a repository with 50,000 folders side by side
costs 50,000 steps even when one folder changed. Here each pair of trees is compared as two
sets of (name, mode, sha) (in C), and only the names whose entry differs are visited:

    for change in changed_files(store, old_tree, new_tree):   # "add", "delete", "modify"
        change.path, change.old, change.new

The order is ``tree_changes``'s: depth first, each tree's entries in name order, a file
before the folder of the same name on the other side; a file whose type changes (a regular
file becoming a symlink, say) is a delete and then an add
(``tests/repo/test_tree_diff.py`` holds the two equal on generated trees).
"""

from __future__ import annotations

import stat
from typing import Any, NamedTuple

from dulwich.objects import Tree  # noqa: TID251 - the adapter's own objects

Entry = tuple[bytes, int, bytes]  # path, mode, sha


class FileChange(NamedTuple):
    """One changed file: ``old``/``new`` are None where the file is absent."""

    type: str  # "add", "delete" or "modify"
    old: Entry | None
    new: Entry | None


def changed_files(store: Any, old_tree: bytes | None, new_tree: bytes | None) -> list[FileChange]:
    """Every file added, deleted or modified from ``old_tree`` to ``new_tree`` (tree ids;
    None: an empty tree)."""
    out: list[FileChange] = []
    _walk(store, old_tree, new_tree, b"", out)
    return out


def _entries(store: Any, tree_id: bytes | None) -> dict[bytes, tuple[int, bytes]]:
    if tree_id is None:
        return {}
    tree = store[tree_id]
    if not isinstance(tree, Tree):
        return {}  # a folder entry naming another object: empty, as dulwich reads it
    entries = _parsed(tree)
    if entries is not None:
        return entries
    return {entry.path: (entry.mode, entry.sha) for entry in tree.iteritems()}


def _parsed(tree: Tree) -> dict[bytes, tuple[int, bytes]] | None:
    """The tree's entries as dulwich keeps them once parsed, name -> (mode, sha), not to be
    changed (None: this dulwich keeps them otherwise). Its public ``iteritems`` sorts them
    and makes an object of each: 50 ms for a tree of 50,000."""
    entries = getattr(tree, "_entries", None)
    return entries if isinstance(entries, dict) else None


def _is_dir(entry: tuple[int, bytes] | None) -> bool:
    return entry is not None and stat.S_ISDIR(entry[0])


def _walk(
    store: Any, old_id: bytes | None, new_id: bytes | None, path: bytes, out: list[FileChange]
) -> None:
    old, new = _entries(store, old_id), _entries(store, new_id)
    for name in sorted({name for name, _ in old.items() ^ new.items()}):
        before, after = old.get(name), new.get(name)
        full = path + b"/" + name if path else name
        a = None if before is None or _is_dir(before) else (full, before[0], before[1])
        b = None if after is None or _is_dir(after) else (full, after[0], after[1])
        if a is not None and b is not None and stat.S_IFMT(a[1]) != stat.S_IFMT(b[1]):
            out.append(FileChange("delete", a, None))
            out.append(FileChange("add", None, b))
        elif a is not None and b is not None:
            out.append(FileChange("modify", a, b))
        elif a is not None:
            out.append(FileChange("delete", a, None))
        elif b is not None:
            out.append(FileChange("add", None, b))
        if _is_dir(before) or _is_dir(after):
            _walk(
                store,
                before[1] if before is not None and _is_dir(before) else None,
                after[1] if after is not None and _is_dir(after) else None,
                full,
                out,
            )
