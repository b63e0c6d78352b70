"""Fixtures shared by every test. Async tests run on asyncio only: glam's runtime is asyncio."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from engine.local import LocalAwsThread


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the embedded AWS (engine.local) ---------------------------------------------------------
# One moto server and proxy for the whole session, in a thread of its own so that every test's
# event loop can talk to it; each test that asks for `local_aws` gets it emptied and with the
# default fidelity and no faults.


@pytest.fixture(scope="session")
def _local_aws_session() -> Iterator[LocalAwsThread]:
    from engine.local import LocalAwsThread

    with LocalAwsThread() as aws:
        yield aws


@pytest.fixture
def local_aws(_local_aws_session: LocalAwsThread) -> LocalAwsThread:
    """The embedded AWS, fresh: ``local_aws.client_kwargs()``, ``.journal``, ``.set_faults``,
    ``.set_fidelity``, ``.endpoint_url``, ``.region``, ``.credentials``."""
    _local_aws_session.reset()
    return _local_aws_session


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """Plain moto over HTTP for the adapters' contract suites: the embedded AWS with every
    fidelity rule off (moto as it is, behind the journaling proxy), one for the session."""
    from engine.local import Fidelity, LocalAwsThread

    with LocalAwsThread(fidelity=Fidelity.off()) as aws:
        yield aws.endpoint_url
