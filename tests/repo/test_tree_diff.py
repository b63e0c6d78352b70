"""``engine.git.tree_diff.changed_files`` reports what dulwich's ``tree_changes`` reports, in
the same order, on generated pairs of trees: files added, deleted, modified, made symlinks
or executable, folders turned into files and back, submodule entries."""

from __future__ import annotations

import stat

import pytest
from dulwich.diff_tree import tree_changes
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import Blob, ObjectID, Tree
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.git import tree_diff
from engine.git.tree_diff import FileChange, changed_files

GITLINK = 0o160000
MODES = (0o100644, 0o100755, 0o120000, GITLINK)
NAMES = st.sampled_from(["a", "b", "a.json", "a-b", "_lambdadef.json", "x", "x.y", "z"])

# A tree: a name to a (mode, content) file or to a tree of its own.
Node = dict[str, object]


def _trees(depth: int) -> st.SearchStrategy[Node]:
    leaf = st.tuples(st.sampled_from(MODES), st.sampled_from(["1", "2", "3"]))
    child: st.SearchStrategy[object] = leaf if depth == 0 else st.one_of(leaf, _trees(depth - 1))
    return st.dictionaries(NAMES, child, max_size=5)


def _store(store: MemoryObjectStore, node: Node) -> ObjectID:
    tree = Tree()
    for name, value in node.items():
        if isinstance(value, dict):
            tree.add(name.encode(), stat.S_IFDIR, _store(store, value))
            continue
        assert isinstance(value, tuple)
        mode, content = value
        if mode == GITLINK:
            sha = Blob.from_string(content.encode()).id  # a commit id as a submodule names it
        else:
            blob = Blob.from_string(content.encode())
            store.add_object(blob)
            sha = blob.id
        tree.add(name.encode(), mode, sha)
    store.add_object(tree)
    return tree.id


def _reference(
    store: MemoryObjectStore, old: ObjectID | None, new: ObjectID | None
) -> list[FileChange]:
    out = []
    for change in tree_changes(store, old, new):
        sides = [
            None if e is None or e.path is None else (e.path, e.mode, e.sha)
            for e in (change.old, change.new)
        ]
        out.append(FileChange(change.type, sides[0], sides[1]))
    return out


@settings(max_examples=300, deadline=None)
@given(_trees(3), _trees(3), st.booleans())
def test_the_changes_are_those_of_dulwich_in_its_order(old: Node, new: Node, empty: bool) -> None:
    store = MemoryObjectStore()
    old_id = None if empty else _store(store, old)
    new_id = _store(store, new)
    assert changed_files(store, old_id, new_id) == _reference(store, old_id, new_id)
    assert changed_files(store, new_id, old_id) == _reference(store, new_id, old_id)


def test_a_deep_change_beside_many_unchanged_folders() -> None:
    store = MemoryObjectStore()
    folders: Node = {f"fn-{i:05d}": {"_lambdadef.json": (0o100644, "1")} for i in range(2000)}
    old_id = _store(store, {"functions": folders})
    changed = dict(folders, **{"fn-01000": {"_lambdadef.json": (0o100644, "2")}})
    del changed["fn-00007"]
    new_id = _store(store, {"functions": changed})
    found = changed_files(store, old_id, new_id)
    assert [(c.type, (c.old or c.new or (b"",))[0]) for c in found] == [
        ("delete", b"functions/fn-00007/_lambdadef.json"),
        ("modify", b"functions/fn-01000/_lambdadef.json"),
    ]
    assert found == _reference(store, old_id, new_id)


def test_the_same_through_dulwichs_public_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dulwich that keeps a tree's entries otherwise: its public iteration, same result."""
    store = MemoryObjectStore()
    old_id = _store(
        store, {"a": {"x": (0o100644, "1"), "y": (0o100644, "1")}, "b": (0o100644, "1")}
    )
    new_id = _store(store, {"a": {"x": (0o100644, "2")}, "b": {"c": (0o120000, "1")}})
    expected = _reference(store, old_id, new_id)
    monkeypatch.setattr(tree_diff, "_parsed", lambda tree: None)
    assert changed_files(store, old_id, new_id) == expected
    assert len(expected) == 4


def test_a_folder_entry_naming_a_file_reads_as_an_empty_folder() -> None:
    """A tree whose folder entry names a blob (a broken or hostile repository): empty, as
    dulwich reads it, never an error."""
    store = MemoryObjectStore()
    blob = Blob.from_string(b"not a tree")
    store.add_object(blob)
    broken = Tree()
    broken.add(b"fns", stat.S_IFDIR, blob.id)
    broken.add(b"x", 0o100644, blob.id)
    store.add_object(broken)
    old_id = _store(store, {"fns": {"a": (0o100644, "1")}})
    for old, new in ((old_id, broken.id), (broken.id, old_id), (None, broken.id)):
        assert changed_files(store, old, new) == _reference(store, old, new)
