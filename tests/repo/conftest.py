from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.git.source import GitSource
from tests.repo.gitrepo import GitRepo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    if shutil.which("git") is None:  # pragma: no cover - the CI image has git
        pytest.fail("the git CLI is required for tests/repo")
    return GitRepo(tmp_path / "repo")


@pytest.fixture
def open_source() -> Iterator[Callable[..., GitSource]]:
    """Make ``GitSource``s that are closed (pack files released) after the test."""
    made: list[GitSource] = []

    def make(*args: Any, **kwargs: Any) -> GitSource:
        source = GitSource(*args, **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()
