from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.repo.gitrepo import GitRepo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    if shutil.which("git") is None:  # pragma: no cover - the CI image has git
        pytest.fail("the git CLI is required for tests/repo")
    return GitRepo(tmp_path / "repo")
