"""Fixtures of the end-to-end tests: the embedded AWS with its demo account (fidelity on), a
real Git repository and a real SQLite log in a temporary folder, and a lister that reads the
resulting AWS state independently of glam."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import AwsState
from tests.repo.gitrepo import GitRepo
from tests.runtime.support import Setup

if TYPE_CHECKING:
    from engine.local import LocalAwsThread


@pytest.fixture
async def setup(local_aws: LocalAwsThread, tmp_path: Path) -> Setup:
    from engine.local.account import build_account

    if shutil.which("git") is None:  # pragma: no cover - the CI image has git
        pytest.fail("the git CLI is required for tests/e2e")
    outputs = await build_account(local_aws.endpoint_url, region=local_aws.region)
    local_aws.journal.clear()  # only what the engine does
    return Setup(
        repo=GitRepo(tmp_path / "repo"),
        db=tmp_path / "state" / "glam.db",
        outputs=outputs,
        endpoint_url=local_aws.endpoint_url,
        region=local_aws.region,
    )


@pytest.fixture
async def aws(local_aws: LocalAwsThread) -> AsyncIterator[AwsState]:
    """AWS as the test lists it: straight to moto, behind the proxy, so that looking neither
    spends the engine's quota nor shows up in the journal whose invariants the test checks."""
    async with AwsState.open(local_aws.moto_url, local_aws.region) as state:
        yield state
