"""Fixtures of the end-to-end tests (``setup`` is shared, in tests/conftest.py): a lister that
reads the resulting AWS state independently of glam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import AwsState

if TYPE_CHECKING:
    from engine.local import LocalAwsThread


@pytest.fixture
async def aws(local_aws: LocalAwsThread) -> AsyncIterator[AwsState]:
    """AWS as the test lists it: straight to moto, behind the proxy, so that looking neither
    spends the engine's quota nor shows up in the journal whose invariants the test checks."""
    async with AwsState.open(local_aws.moto_url, local_aws.region) as state:
        yield state
