"""The probes and the read API over real HTTP against a running engine on the embedded AWS."""

from __future__ import annotations

import pytest

from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}


async def test_probes_and_functions_after_a_deployment(setup: Setup) -> None:
    """/healthz answers at once; /readyz is ready once the branch was fetched; the functions
    the engine deployed are listed as ``glam status`` shows them."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup) as srv:
        assert await srv.get("/healthz") == (200, {"status": "ok"})
        await srv.wait_for(lambda r: r.type == "DeploymentFinished")
        status, ready = await srv.get("/readyz")
        assert (status, ready) == (200, {"ready": True, "reasons": []})
        status, body = await srv.get("/api/v1/functions")
        assert status == 200
        [row] = body["functions"]
        assert (row["name"], row["state"], row["stable_version"]) == (NAME, "stable", "1")
