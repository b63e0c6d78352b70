"""Scale: fifty functions in one commit, deployed by one engine on the embedded AWS with its
15 requests/second control-plane quota on. Every deployment succeeds and the journal never
shows the quota exceeded: the engine's shared rate limiter, not the emulator's 429s, paces the
sagas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.local import LocalAwsThread
from engine.testing import AutojumpClock
from tests.chaos.support import Case, effective_publishes, read_aws, replay_verify, version_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

COUNT = 50


async def test_fifty_functions_in_one_commit_stay_under_the_quota(
    local_aws: LocalAwsThread,
    demo_account: dict[str, Any],
    autojump: AutojumpClock,
    tmp_path: Path,
) -> None:
    """Fifty creates in one commit all succeed; no one-second window of the journal holds more
    than 15 control-plane calls or 100 GetFunction calls, and no call was refused for quota."""
    aws = local_aws
    assert aws.fidelity.quota
    assert aws.fidelity.control_rps == 15
    case = Case("fn00", tmp_path, demo_account, aws.endpoint_url, aws.region, autojump)
    names = [f"fn{i:02d}" for i in range(COUNT)]
    for name in names:
        case.write(name=name, batch=None)
    case.repo.commit(f"{COUNT} functions")

    report = await case.run_in_process()

    assert sorted(f"{s.rsplit(':', 1)[1]}:{f.outcome}" for s, f in report.finished) == [
        f"{name}:succeeded" for name in names
    ]
    assert report.exit_code == 0
    journal = aws.journal
    control = journal.max_rate("control")
    polls = journal.max_rate("get_function")
    refused = [e for e in journal.entries if e.rule == "quota"]
    assert control <= 15, f"{control} control-plane calls within one second"
    assert polls <= 100, f"{polls} GetFunction calls within one second"
    assert refused == [], f"{len(refused)} calls refused for quota"
    journal.check_invariants()
    # The sagas did run side by side: one at a time would never come near the quota.
    assert control >= 5, f"only {control} control-plane calls in the busiest second"
    for name in names:
        view = await read_aws(aws, name)
        (deployment,) = await case.deployments(name)
        assert view.alias == (await version_of(aws, case, deployment, name), {})
        assert len(effective_publishes(aws, name)) == 1
    code, output = await anyio.to_thread.run_sync(replay_verify, case.db)
    assert code == 0, output
