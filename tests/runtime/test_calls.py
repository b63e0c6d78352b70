"""Every call a deployment makes, counted from the embedded AWS's journal and held to the
table in docs/performance.md ("Calls per deployment"): the doc cannot drift from the code."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from engine.local import LocalAwsThread
from tests.runtime.support import NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DOC = Path(__file__).parents[2] / "docs" / "performance.md"
STRATEGIES = {
    "CANARY 10 %": {"type": "CANARY", "percent": 10, "waitInterval": 1},
    "LINEAR 20 %": {"type": "LINEAR", "percent": 20, "waitInterval": 1},
    "ALL_AT_ONCE": {"type": "ALL_AT_ONCE", "waitInterval": 1},
    "no trafficShiftingConfig": None,
}
CREATE = "first deployment (create)"


def documented() -> tuple[list[str], dict[str, dict[str, int]]]:
    """The operations of the doc's calls table and, per deployment, the count of each (plus
    ``control-plane calls`` and ``minimum``)."""
    text = DOC.read_text()
    table = text.split("<!-- calls-table", 1)[1].split("<!-- end calls-table -->", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    counts: dict[str, dict[str, int]] = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        counts[cells[0]] = {
            name: int(value) for name, value in zip(header[1:], cells[1:], strict=True)
        }
    return [h for h in header[1:] if re.fullmatch(r"[A-Z][A-Za-z]+", h)], counts


def counted(local_aws: LocalAwsThread, operations: list[str]) -> dict[str, int]:
    """What the journal holds for the function: each documented operation and the calls on
    the control-plane quota."""
    calls = [e for e in local_aws.journal.calls() if e.function == NAME or e.service != "lambda"]
    lambda_calls = [e for e in calls if e.service == "lambda"]
    by_operation = Counter(e.operation for e in lambda_calls)
    control = sum(1 for e in lambda_calls if e.quota_bucket == "control")
    return {**{op: by_operation[op] for op in operations}, "control-plane calls": control}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_the_calls_of_a_deployment_are_the_documented_ones(
    setup: Setup, local_aws: LocalAwsThread, strategy: str
) -> None:
    """A first deployment and a configuration change under each strategy make exactly the
    calls the doc lists, which are the minimum: no GetAlias, one UpdateAlias per step."""
    operations, table = documented()
    assert set(table) == {CREATE, *STRATEGIES}
    traffic = STRATEGIES[strategy]
    write_function(setup.repo, setup.outputs, traffic=traffic)
    if traffic is None:  # the helper always writes a config: write the depdef without one
        setup.repo.write("apps/orders/orders_lambdadepdef.json", {"alias": "live"})
    setup.repo.commit("add orders")
    local_aws.journal.clear()
    assert outcomes(await setup.run_once()) == ["succeeded"]
    created = counted(local_aws, operations)
    expected = table[CREATE]
    assert created == {k: v for k, v in expected.items() if k != "minimum"}
    assert expected["control-plane calls"] == expected["minimum"]

    write_function(setup.repo, setup.outputs, traffic=traffic, memory=256)
    if traffic is None:
        setup.repo.write("apps/orders/orders_lambdadepdef.json", {"alias": "live"})
    setup.repo.commit("more memory")
    local_aws.journal.clear()
    assert outcomes(await setup.run_once()) == ["succeeded"]
    updated = counted(local_aws, operations)
    expected = table[strategy]
    assert updated == {k: v for k, v in expected.items() if k != "minimum"}
    assert expected["control-plane calls"] == expected["minimum"]
    # GetFunction (its own budget): $LATEST, the stable version, the polls, the readiness.
    polls = [e for e in local_aws.journal.calls("GetFunction") if e.function == NAME]
    assert len(polls) >= 4
