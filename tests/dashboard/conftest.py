"""The browser tests' fixtures: one Chromium and one engine (on the embedded AWS, the demo
account) for a whole module, so that the pages are looked at while the engine deploys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from anyio.from_thread import start_blocking_portal

from engine.testing import AutojumpClock
from tests.dashboard.support import artifacts_dir, browser_session
from tests.repo.gitrepo import GitRepo
from tests.runtime.support import Setup
from tests.support.account import DemoAccount

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from engine.local import LocalAwsThread


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with browser_session() as launched:
        yield launched


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = artifacts_dir()
    print(f"\nglam: the dashboard's screenshots go to {folder}")
    return folder


@pytest.fixture(scope="module")
def module_setup(
    _local_aws_session: LocalAwsThread, _demo: DemoAccount, tmp_path_factory: pytest.TempPathFactory
) -> Setup:
    """``setup`` for a whole module: the demo account built afresh, a repository, a db."""
    _local_aws_session.reset()
    _demo.forget()
    # On a loop of its own: Playwright's sync API may already run one in this thread.
    with start_blocking_portal(backend="asyncio") as portal:
        outputs = portal.call(_demo.ensure, _local_aws_session)
    folder = tmp_path_factory.mktemp("dashboard")
    return Setup(
        repo=GitRepo(folder / "repo"),
        db=folder / "state" / "glam.db",
        outputs=outputs,
        endpoint_url=_local_aws_session.endpoint_url,
        region=_local_aws_session.region,
        clock=AutojumpClock(),  # unused: the served engine runs on the system clock
    )
