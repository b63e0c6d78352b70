"""Time the dashboard's pages over real HTTP (run through ./scripts/bench-dashboard).

A SQLite log of ``--functions`` functions and ``--events`` events (canary deployments, as
``bench_store`` makes them, imported through the store and folded by the projection runner,
which saves its snapshots as the engine's does) is served by ``glam dashboard --db`` in a
process of its own; then ``--requests`` sequential GETs of each page on one keep-alive
connection. Each page's median and p95 are printed with their ratio to the 200 ms goal and to
the baseline measured in the same run: ``GET /healthz`` (the same server, no page).

Time travel is timed twice: the same position again and again (the board remembers its last
answers), and a new position at each request (a fold from the nearest snapshot every time).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import anyio
from bench_store import _rows

from engine.store import make_store
from projections.runner import ProjectionRunner

GOAL = 0.200  # seconds: the "pages load in under 200 ms"
ACCOUNT, REGION = "111111111111", "eu-west-1"
EVENTS_PER_DEPLOYMENT = 10  # bench_store._deployment


async def _build(db: Path, events: int, functions: int) -> None:
    rows = _rows(events, functions)
    began = time.perf_counter()
    async with make_store(db) as store:
        for start in range(0, len(rows), 50_000):
            await store.import_rows(rows[start : start + 50_000])
        await ProjectionRunner(store, batch=10_000).rebuild()
    took = time.perf_counter() - began
    print(f"log: {events:,} events, {functions:,} functions, built in {took:.1f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """One keep-alive HTTP connection to the dashboard."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[int, bytes, float]:
        began = time.perf_counter()
        self.conn.request("GET", path)
        answer = self.conn.getresponse()
        body = answer.read()
        return answer.status, body, time.perf_counter() - began


def _wait_ready(client: Client, process: subprocess.Popen[bytes], events: int) -> float:
    """Wait until the server has folded the whole log (the overview's footer says so)."""
    began = time.perf_counter()
    wanted = f'<span id="position">{events}</span>'.encode()
    while True:
        if process.poll() is not None:
            raise SystemExit(f"glam dashboard exited with {process.returncode}")
        try:
            status, body, _ = client.get("/dashboard/")
            if status == 200 and wanted in body:
                return time.perf_counter() - began
        except (ConnectionError, http.client.HTTPException, OSError):
            client.conn.close()
        time.sleep(0.2)


def _figures(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def _time(client: Client, paths: list[str], expect: bytes) -> list[float]:
    times = []
    for path in paths:
        status, body, seconds = client.get(path)
        if status != 200 or expect not in body:
            raise SystemExit(f"GET {path}: {status}, {body[:300]!r}")
        times.append(seconds)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--functions", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--db", type=Path, help="keep the log here (reused when it exists)")
    args = parser.parse_args()
    n = args.requests + 2  # the first two of each page warm it (imports, first reads)
    with tempfile.TemporaryDirectory(prefix="glam-bench-dashboard-") as tmp:
        db = args.db or Path(tmp) / "glam.db"
        if not db.exists():
            anyio.run(_build, db, args.events, args.functions)
        port = _free_port()
        glam = Path(sys.executable).parent / "glam"
        command = [str(glam), "dashboard", "--db", str(db), "--listen", f"127.0.0.1:{port}"]
        print("serving: " + " ".join(command[1:]))
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=dict(os.environ))
        try:
            client = Client(port)
            ready = _wait_ready(client, process, args.events)
            print(f"  whole log folded by the server in {ready:.1f} s")
            stream = f"fn:{ACCOUNT}:{REGION}:f1"
            deployments = args.events // EVENTS_PER_DEPLOYMENT
            mid = args.events // 2
            # A position a canary is at 20 % (its 6th event): what the chart and rows show then.
            step = (mid // EVENTS_PER_DEPLOYMENT) * EVENTS_PER_DEPLOYMENT + 6
            positions = [step + i * 97 for i in range(n)]
            fn = f"/dashboard/functions/{quote(stream)}"
            pages: list[tuple[str, list[str], bytes]] = [
                ("baseline: GET /healthz", ["/healthz"] * n, b"ok"),
                ("static file (dashboard.css)", ["/dashboard/static/dashboard.css"] * n, b"body"),
                (f"overview ({args.functions:,} functions)", ["/dashboard/"] * n, b"f999"),
                ("function page (chart, history)", [fn] * n, b"svg"),
                (
                    "deployment page",
                    [f"/dashboard/deployments/dep-{deployments // 2}"] * n,
                    b"publish_version",
                ),
                ("time travel: function, same ?at=", [f"{fn}?at={step}"] * n, b"Historical"),
                (
                    "time travel: overview, same ?at=",
                    [f"/dashboard/?at={step}"] * n,
                    b"Historical",
                ),
                (
                    "time travel: overview, new ?at= each",
                    [f"/dashboard/?at={p}" for p in positions],
                    b"Historical",
                ),
            ]
            baseline = 0.0
            goal = f"goal {GOAL * 1000:.0f} ms"
            print(f"{args.requests} GETs each, one keep-alive connection; {goal}")
            print(f"  {'page':40} {'median':>9} {'p95':>9}  {'/goal':>6} {'/baseline':>9}")
            for label, paths, expect in pages:
                _time(client, paths[:2], expect)
                median, p95 = _figures(_time(client, paths[2:], expect))
                if not baseline:
                    baseline = median
                print(
                    f"  {label:40} {median * 1000:7.1f}ms {p95 * 1000:7.1f}ms  "
                    f"{p95 / GOAL:6.2f} {median / baseline:8.1f}x"
                )
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
