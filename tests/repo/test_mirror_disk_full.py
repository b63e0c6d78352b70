"""A full disk under the repository's copy (the bare mirror under the data folder): one
retryable line naming the copy, never a traceback, and the next poll after space is freed
fetches as if nothing had happened (redteam: dulwich's ``OSError: [Errno 28]`` from the ref
update ended ``glam run`` in an ExceptionGroup traceback)."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.errors import SourceUnreachable
from engine.git.source import GitSource
from engine.git.state import observe_branch
from engine.observe import Fetched, Unavailable
from tests.repo.gitrepo import GitRepo, function_files
from tests.support.disk import fill, small_tmpfs

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "1m") as disk:
        yield disk


def _full_line(reason: str) -> None:
    assert "the disk holding the repository's copy at " in reason, reason
    assert "is full: free space on it; glam fetches again at the next poll" in reason, reason
    assert "Errno" not in reason


async def test_the_branch_ref_on_a_full_disk(
    repo: GitRepo, small_disk: Path, open_source: Callable[..., GitSource]
) -> None:
    """Every object is in the copy and only the branch's ref is to be written (a second
    branch at the same commit), on a disk with no byte left: the poll is Unavailable with the
    full disk named, and once space is freed the ref is written (no lock file left behind)."""
    function_files(repo, "fns/a/a", "fn-a")
    head = repo.commit("first")
    repo.git("branch", "other")
    data = small_disk / "data"
    assert await open_source(str(repo.path), "main", data_dir=data).sync() == head
    filler = fill(small_disk)
    other = open_source(str(repo.path), "other", data_dir=data)
    with pytest.raises(SourceUnreachable) as full:
        await other.sync()
    _full_line(full.value.message)
    assert str(data / "mirrors") in full.value.message
    observation = await observe_branch(other, None)
    assert isinstance(observation, Unavailable)
    _full_line(observation.reason)
    gc.collect()  # a dulwich file left open would warn (an error here) when collected
    os.unlink(filler)
    assert await other.sync() == head
    fetched = await observe_branch(other, None)
    assert isinstance(fetched, Fetched)
    assert fetched.head == head


async def test_a_fetch_on_a_full_disk(
    repo: GitRepo, small_disk: Path, open_source: Callable[..., GitSource]
) -> None:
    """A new commit whose objects do not fit: the same line, and the next fetch after space
    is freed gets it."""
    function_files(repo, "fns/a/a", "fn-a")
    repo.commit("first")
    source = open_source(str(repo.path), "main", data_dir=small_disk / "data")
    await source.sync()
    repo.write("fns/a/blob.bin", os.urandom(300_000))  # random: git cannot compress it
    second = repo.commit("second")
    filler = fill(small_disk)
    observation = await observe_branch(source, None)
    assert isinstance(observation, Unavailable)
    _full_line(observation.reason)
    gc.collect()
    os.unlink(filler)
    assert await source.sync() == second


async def test_the_first_copy_on_a_full_disk(
    repo: GitRepo, small_disk: Path, open_source: Callable[..., GitSource]
) -> None:
    """No copy yet and no space to make one: the same line, and no half-made copy that
    every later attempt would fail on."""
    function_files(repo, "fns/a/a", "fn-a")
    head = repo.commit("first")
    filler = fill(small_disk)
    source = open_source(str(repo.path), "main", data_dir=small_disk / "data")
    observation = await observe_branch(source, None)
    assert isinstance(observation, Unavailable)
    _full_line(observation.reason)
    gc.collect()
    os.unlink(filler)
    assert await source.sync() == head
