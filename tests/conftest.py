"""Fixtures shared by every test. Async tests run on asyncio only: glam's runtime is asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
