"""Fixtures shared by every test. Async tests run on asyncio only: glam's runtime is asyncio."""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from blockbuster import blockbuster_ctx

from engine.definitions.names import partitions
from engine.definitions.normalize import member_kinds
from engine.testing import AutojumpClock
from tests.repo.gitrepo import GitRepo
from tests.runtime.support import Setup
from tests.support.account import DemoAccount

if TYPE_CHECKING:
    from engine.local import LocalAwsThread


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the embedded AWS (engine.local) ---------------------------------------------------------
# One moto server and proxy for the whole session, in a thread of its own so that every test's
# event loop can talk to it; each test that asks for `local_aws` gets it emptied and with the
# default fidelity and no faults. A test that also asks for `demo_account` gets the demo
# account instead of an empty moto: built once, put back before each test (tests/support).


@pytest.fixture(scope="session")
def _local_aws_session() -> Iterator[LocalAwsThread]:
    from engine.local import LocalAwsThread

    with LocalAwsThread() as aws:
        yield aws


@pytest.fixture(scope="session")
def _demo() -> DemoAccount:
    return DemoAccount()


@pytest.fixture
def local_aws(
    request: pytest.FixtureRequest, _local_aws_session: LocalAwsThread, _demo: DemoAccount
) -> LocalAwsThread:
    """The embedded AWS, fresh: ``local_aws.client_kwargs()``, ``.journal``, ``.set_faults``,
    ``.set_fidelity``, ``.endpoint_url``, ``.region``, ``.credentials``."""
    if "demo_account" in request.fixturenames:
        # moto keeps the account; `demo_account` puts back what the last test changed.
        _local_aws_session.reset(moto=False)
    else:
        _local_aws_session.reset()
        _demo.forget()
    return _local_aws_session


@pytest.fixture
async def demo_account(local_aws: LocalAwsThread, _demo: DemoAccount) -> dict[str, Any]:
    """The demo account's outputs (terraform-output-shaped), as just built."""
    return await _demo.ensure(local_aws)


@pytest.fixture
def autojump(local_aws: LocalAwsThread) -> AutojumpClock:
    """The engine's clock in integration tests: it jumps to the next deadline whenever every
    sleeper waits, and moves the embedded AWS's clock by as much (``engine.testing``)."""

    async def advance(seconds: float) -> None:
        await anyio.to_thread.run_sync(local_aws.advance_clock, seconds)

    return AutojumpClock(on_advance=advance)


@pytest.fixture
async def setup(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], autojump: AutojumpClock, tmp_path: Path
) -> Setup:
    """A Git repository and a SQLite file in a temporary folder, the demo account on the
    embedded AWS, and engines on the jumping clock (``tests.runtime.support.Setup``)."""
    if shutil.which("git") is None:  # pragma: no cover - the CI image has git
        pytest.fail("the git CLI is required for the engine tests")
    return Setup(
        repo=GitRepo(tmp_path / "repo"),
        db=tmp_path / "state" / "glam.db",
        outputs=demo_account,
        endpoint_url=local_aws.endpoint_url,
        region=local_aws.region,
        clock=autojump,
    )


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """Plain moto over HTTP for the adapters' contract suites: the embedded AWS with every
    fidelity rule off (moto as it is, behind the journaling proxy), one for the session."""
    from engine.local import Fidelity, LocalAwsThread

    with LocalAwsThread(fidelity=Fidelity.off()) as aws:
        yield aws.endpoint_url


# -- timeouts and blocking calls -------------------------------------------------------------

INTEGRATION_TIMEOUT = 90.0
SLOW_TIMEOUT = 300.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests keep the default timeout (pyproject.toml); integration and slow tests get
    their own, unless they name one."""
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
        elif item.get_closest_marker("integration") is not None:
            item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT))


@pytest.fixture(autouse=True)
def _no_blocking_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """An async test fails on any blocking call (file, socket, sleep, lock...) made on an
    event loop by glam's code (blockbuster, as anyio's own suite uses it). A test's own set-up
    (tampering with a file, say) may block: only calls through engine/ and projections/
    count."""
    if not inspect.iscoroutinefunction(getattr(request.node, "function", None)):
        yield
        return
    # The embedded AWS (engine.local) is left out: it stands in for AWS, on a loop of its own
    # in its own thread, and what it does there is not glam's event loop blocking.
    with blockbuster_ctx(["engine", "projections"], excluded_modules=["engine.local"]) as buster:
        for function in buster.functions.values():
            for filename, functions in ALLOWED_BLOCKING:
                function.can_block_in(filename, functions)
        yield


# botocore's data files (the regions, Lambda's model) are read once per process and cached: an
# engine reads them in a worker thread when it starts; tests that call the planner or the saga
# straight on a loop get them read here, before any loop runs.
partitions()
member_kinds()

# Where glam's code may block on a loop all the same, each for its reason: (file, functions).
ALLOWED_BLOCKING: list[tuple[str, set[str]]] = [
    # botocore reads Lambda's service model from disk once per process (it is cached after):
    # on the loop when the fast tests' in-memory repository validates a definition (the Git
    # source does it in a worker thread).
    ("engine/definitions/lambdadef.py", {"create_function_shape"}),
    # aiobotocore makes a client synchronously: botocore stats and reads ~/.aws/config and the
    # service models then (once per client, before any call; aiobotocore offers no other way).
    ("aiobotocore/session.py", {"_create_client"}),
    # The engine lock: a non-blocking flock on a small local file and the owner's pid written
    # in it, once when an engine starts and once when it stops.
    ("engine/store/lock.py", {"acquire", "release"}),
    # Cancelling a render wakes the render thread with one byte on a self-pipe, under a lock
    # that thread holds only to close the pipe: neither waits.
    ("engine/git/render.py", {"set"}),
    # The tests' synchronous handle on the embedded AWS (LocalAwsThread), which runs in a
    # thread of its own: a call from a test waits milliseconds for that thread's loop.
    ("engine/local/aws.py", {"_call", "__enter__", "__exit__"}),
    # `glam plan` makes its scratch folder on its own loop: a CLI command is a process of its
    # own (tests run it in a worker thread beside the engine's loop).
    ("engine/cli/plan.py", {"_plan"}),
]
