"""Measure a fleet rollout at Lambda's quota (run through ./scripts/bench-fleet).

One engine in this process, an SQLite log in a temporary folder, and the embedded AWS with its
fidelity on: Pending and InProgress states, and the 15 requests/s control-plane quota per
account and region (above it 429 TooManyRequestsException). N functions are created first
(with the quota off and the limiter wide open: that is set-up, not measured); then one commit
changes every function's configuration with a CANARY 10 % and a 1 s bake, so N deployments
start at once, and the engine runs until all of them have finished. That rollout runs twice,
from the same state of the fleet:

    baseline   glam's limiter as it was, fixed at 10 calls/s (``--baseline-rate``)
    quota      the limiter at the quota, 15 calls/s (the default ``max_rate``)

For each it prints, from the embedded AWS's journal: control-plane calls per deployment by
operation against the minimum (docs/performance.md, "Calls per deployment"), the wall time of
the rollout against the bound the quota sets (control-plane calls / 15 s⁻¹), and the time
from the first control-plane call to the last against it (the pacing alone, without the
engine's start and the last bake), the most
control-plane calls that arrived in any one second, and the 429s; then each figure of the quota
run as a ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.local import LocalAwsThread  # noqa: E402
from engine.runtime.engine import Engine, EngineConfig  # noqa: E402
from tests.repo.gitrepo import GitRepo  # noqa: E402
from tests.runtime.support import write_function  # noqa: E402
from tests.support.account import DemoAccount  # noqa: E402

QUOTA = 15  # Lambda's control-plane calls per second, per account and region
CANARY = {"type": "CANARY", "percent": 10, "waitInterval": 1}
# A configuration change under a CANARY: UpdateFunctionConfiguration, PublishVersion, the
# 10 % UpdateAlias, the promote (UpdateAlias) and the DeleteFunction of the old version.
MINIMUM = 5


@dataclass(frozen=True)
class Rollout:
    label: str
    rate: float
    wall: float
    deployments: int
    succeeded: int
    calls: Counter[str]
    span: float  # from the first control-plane call's arrival to the last one's
    answer: float  # the mean time the embedded AWS took to answer one
    peak: int
    throttled: int

    @property
    def control(self) -> int:
        return sum(self.calls.values())

    @property
    def per_deployment(self) -> float:
        return self.control / self.deployments

    @property
    def bound(self) -> float:
        return self.control / QUOTA

    @property
    def over_bound(self) -> float:
        return self.wall / self.bound

    @property
    def span_over_bound(self) -> float:
        return self.span / self.bound


def _names(count: int) -> list[str]:
    return [f"fn{i:04d}" for i in range(count)]


def _write(repo: GitRepo, outputs: dict[str, Any], count: int, memory: int) -> None:
    for name in _names(count):
        write_function(
            repo, outputs, name=name, prefix=f"apps/{name}/{name}", memory=memory, traffic=CANARY
        )
    repo.commit(f"{count} functions, {memory} MB")


def _config(repo: GitRepo, folder: Path, aws: LocalAwsThread, count: int, rate: float) -> Any:
    return EngineConfig(
        repo=str(repo.path),
        db=folder / "glam.db",
        region=aws.region,
        endpoint_url=aws.endpoint_url,
        poll=0.2,
        max_parallel=count,
        max_rate=rate,
        access_key_id="testing",
        secret_access_key="testing",
        drift_interval=0,
    )


async def _run(config: EngineConfig, within: float) -> tuple[float, int, int]:
    """One ``glam run --once``: its wall time, the deployments finished, those succeeded."""
    began = time.perf_counter()
    async with Engine(config) as engine:
        with anyio.fail_after(within):
            report = await engine.run(once=True)
    wall = time.perf_counter() - began
    ok = sum(1 for _, finished in report.finished if finished.outcome == "succeeded")
    return wall, len(report.finished), ok


async def _rollout(
    label: str,
    rate: float,
    memory: int,
    *,
    aws: LocalAwsThread,
    repo: GitRepo,
    outputs: dict[str, Any],
    folder: Path,
    count: int,
    within: float,
) -> Rollout:
    _write(repo, outputs, count, memory)
    aws.journal.clear()
    print(f"{label}: {count:,} CANARY 10 % deployments at once, limiter at {rate:g}/s", flush=True)
    wall, finished, ok = await _run(_config(repo, folder, aws, count, rate), within)
    entries = aws.journal.entries
    control = [e for e in entries if e.quota_bucket == "control"]
    return Rollout(
        label=label,
        rate=rate,
        wall=wall,
        deployments=finished,
        succeeded=ok,
        calls=Counter(e.operation for e in control),
        span=max(e.t for e in control) - min(e.t for e in control) if control else 0.0,
        answer=sum(e.duration for e in control) / max(1, len(control)),
        peak=aws.journal.max_rate("control", region=aws.region),
        throttled=sum(1 for e in entries if e.status == 429),
    )


def _report(run: Rollout) -> None:
    by_op = ", ".join(
        f"{op} {n / run.deployments:.2f}" for op, n in sorted(run.calls.items(), key=str)
    )
    done = f"{run.succeeded:,}/{run.deployments:,}"
    print(f"  {run.label} (limiter {run.rate:g}/s): {done} succeeded")
    print(f"    control-plane calls per deployment: {run.per_deployment:.2f} (minimum {MINIMUM})")
    print(f"      by operation: {by_op}")
    print(
        f"    wall {run.wall:.1f} s, bound {run.bound:.1f} s ({run.control:,} calls / {QUOTA}/s):"
        f" wall / bound {run.over_bound:.2f}"
    )
    print(
        f"    first to last control-plane call {run.span:.1f} s: span / bound"
        f" {run.span_over_bound:.2f}; {run.control / run.span:.1f} calls/s;"
        f" the embedded AWS answered each in {run.answer * 1000:.0f} ms on average"
    )
    print(f"    peak control-plane calls in any 1 s: {run.peak} (quota {QUOTA})")
    print(f"    429s: {run.throttled}")


def _ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}x" if old else ("1.00x" if new == old else "n/a (baseline 0)")


async def _main(args: argparse.Namespace) -> None:
    count: int = args.functions
    with tempfile.TemporaryDirectory(prefix="glam-bench-fleet-") as tmp, LocalAwsThread() as aws:
        folder = Path(tmp)
        outputs = await DemoAccount().ensure(aws)
        repo = GitRepo(folder / "repo")
        fidelity = aws.fidelity
        assert fidelity.quota
        assert fidelity.control_rps == QUOTA

        # Set-up: the fleet, with the quota off and the limiter wide open.
        aws.set_fidelity(dataclasses.replace(fidelity, quota=False))
        _write(repo, outputs, count, 128)
        wall, _, ok = await _run(_config(repo, folder, aws, count, 1000.0), args.timeout)
        print(f"set-up: {ok:,} functions created in {wall:.1f} s (quota off)", flush=True)
        assert ok == count, f"only {ok} of {count} functions created"
        aws.set_fidelity(fidelity)

        common: dict[str, Any] = {
            "aws": aws,
            "repo": repo,
            "outputs": outputs,
            "folder": folder,
            "count": count,
            "within": args.timeout,
        }
        base = await _rollout("baseline", args.baseline_rate, 256, **common)
        _report(base)
        now = await _rollout("quota", args.rate, 512, **common)
        _report(now)

    print(f"fleet rollout of {count:,} functions, quota run / baseline run:")
    print(
        f"  calls per deployment {now.per_deployment:.2f} / {base.per_deployment:.2f}"
        f" = {_ratio(now.per_deployment, base.per_deployment)} (minimum {MINIMUM})"
    )
    print(f"  wall {now.wall:.1f} s / {base.wall:.1f} s = {_ratio(now.wall, base.wall)}")
    print(
        f"  wall / bound {now.over_bound:.2f} / {base.over_bound:.2f}"
        f" = {_ratio(now.over_bound, base.over_bound)}"
    )
    print(
        f"  span / bound {now.span_over_bound:.2f} / {base.span_over_bound:.2f}"
        f" = {_ratio(now.span_over_bound, base.span_over_bound)}"
    )
    print(f"  peak calls in 1 s {now.peak} / {base.peak} = {_ratio(now.peak, base.peak)}")
    print(f"  429s {now.throttled} / {base.throttled} = {_ratio(now.throttled, base.throttled)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("functions", nargs="?", type=int, default=200)
    parser.add_argument("--rate", type=float, default=QUOTA, help="the limiter (default 15)")
    parser.add_argument(
        "--baseline-rate", type=float, default=10.0, help="the baseline's limiter (default 10)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="per engine run, s")
    anyio.run(_main, parser.parse_args())


if __name__ == "__main__":
    main()
