"""The embedded AWS as one object: moto in a subprocess, the proxy in front of it.

    async with LocalAws(fidelity=Fidelity(pending_seconds=2)) as aws:
        session.create_client("lambda", **aws.client_kwargs())
        ...
        aws.journal.check_invariants()

``LocalAwsThread`` is the same thing for synchronous code and pytest session fixtures: it runs
the proxy on an event loop in its own thread and joins it on exit.

Time inside is the proxy's movable clock: ``aws.advance_clock(5)`` makes five seconds pass at
once for every timer (Pending, InProgress, the quota windows, an injected latency), so a test
never waits for them; the clock never moves back, not even on ``reset()``.

Accounts: moto keeps resources per account, and a call acts in the account of its access
key. ``aws.assume_role(arn)`` returns credentials for the role's account (any role ARN, in
any account); ``aws.client_kwargs(credentials=...)`` points a client at the endpoint with
them. The journal records each call's account, and the fidelity rules and the quota hold per
account and region.

moto runs as a subprocess rather than a thread: its state is module-global, and a process can
always be stopped completely (no thread of moto's can outlive the component).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal, start_blocking_portal

from engine.errors import LocalAwsError
from engine.local.clock import MovableClock
from engine.local.faults import FaultSpec
from engine.local.fidelity import Fidelity, Monotonic
from engine.local.journal import Journal
from engine.local.proxy import Proxy

MOTO_MAIN = Path(__file__).with_name("_moto_main.py")
REGION = "us-east-1"
START_TIMEOUT = 60.0  # importing moto takes seconds, many more on a loaded machine
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Credentials:
    """Credentials for the embedded AWS: the dummies (the default account), or the session
    credentials of an assumed role (its account). None of them work on real AWS."""

    access_key_id: str = "testing"
    secret_access_key: str = "testing"  # noqa: S105 - a dummy only moto accepts
    session_token: str | None = None

    def __repr__(self) -> str:
        # Dummies, but the habit matters: credentials never reach logs.
        return f"Credentials(<{'session' if self.session_token else 'dummy'}>)"

    def as_tuple(self) -> tuple[str, str] | tuple[str, str, str]:
        """``(key, secret)`` or ``(key, secret, token)``, as ``clients.aws_client`` takes."""
        if self.session_token:
            return (self.access_key_id, self.secret_access_key, self.session_token)
        return (self.access_key_id, self.secret_access_key)


class MotoServer:
    """moto's server as a subprocess on 127.0.0.1, on a port the kernel picked."""

    def __init__(self) -> None:
        self._process: anyio.abc.Process | None = None
        self.port = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start moto and wait for it to announce its port."""
        # stderr goes to a file, not a pipe: nobody reads it while moto runs, and a full pipe
        # would block moto; it is read only to explain a failed start.
        with tempfile.TemporaryFile() as stderr:
            error: BaseException | None = None
            line = b""
            try:
                self._process = await anyio.open_process(
                    # Run the file, not the module: `-m` would import engine.local (aiohttp,
                    # botocore...) into the child first, a second of start-up for nothing.
                    [sys.executable, str(MOTO_MAIN)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                )
                assert self._process.stdout is not None
                with anyio.move_on_after(START_TIMEOUT):
                    while not line.endswith(b"\n"):
                        line += await self._process.stdout.receive(64)
            except (OSError, anyio.EndOfStream) as exc:
                error = exc
            if not line.startswith(b"PORT "):
                await self.stop()
                stderr.seek(0)
                tail = stderr.read()[-2000:].decode("utf-8", "replace").strip()
                reason = tail.splitlines()[-1] if tail else (error or "no answer in time")
                raise LocalAwsError(
                    f"moto did not start: {reason}",
                    hint="check that the 'local' extra is installed: "
                    "pip install 'glam-gitops[local]'",
                )
        self.port = int(line.split()[1])

    async def stop(self) -> None:
        """Close moto's stdin (it exits on EOF), then terminate or kill if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                with contextlib.suppress(Exception):
                    await process.stdin.aclose()
            with anyio.move_on_after(STOP_TIMEOUT):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


class LocalAws:
    """The embedded AWS: ``async with LocalAws() as aws:`` starts moto and the proxy."""

    region = REGION
    credentials = Credentials()

    def __init__(
        self,
        *,
        fidelity: Fidelity | None = None,
        faults: FaultSpec | str = "",
        port: int = 0,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self._fidelity = fidelity or Fidelity()
        self._faults = faults
        self._port = port
        self.journal = Journal()
        self._moto = MotoServer()
        self._proxy: Proxy | None = None
        # The proxy's clock (engine.local.clock): read it, or move it with advance_clock.
        self.clock = clock if isinstance(clock, MovableClock) else MovableClock(clock)

    @property
    def endpoint_url(self) -> str:
        """Where AWS clients point: the proxy."""
        return f"http://127.0.0.1:{self.proxy.port}"

    @property
    def moto_url(self) -> str:
        """moto itself, bypassing fidelity, faults and journal (for test set-up only)."""
        return self._moto.url

    @property
    def moto_pid(self) -> int | None:
        return self._moto.pid

    @property
    def proxy(self) -> Proxy:
        if self._proxy is None:
            raise LocalAwsError(
                "the embedded AWS is not running", hint="use `async with LocalAws()`"
            )
        return self._proxy

    def client_kwargs(self, credentials: Credentials | None = None) -> dict[str, Any]:
        """Keyword arguments for ``session.create_client(service, **aws.client_kwargs())``;
        with ``credentials`` (e.g. from ``assume_role``) the client acts in their account."""
        creds = credentials or self.credentials
        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": creds.access_key_id,
            "aws_secret_access_key": creds.secret_access_key,
        }
        if creds.session_token:
            kwargs["aws_session_token"] = creds.session_token
        return kwargs

    async def assume_role(
        self,
        role_arn: str,
        *,
        session_name: str = "glam-local",
        credentials: Credentials | None = None,
    ) -> Credentials:
        """``sts:AssumeRole`` through the proxy (it shows in the journal): credentials that act
        in the role's account. moto lets any role ARN be assumed, existing or not."""
        from engine.local.clients import assume_role

        caller = credentials or self.credentials
        key, secret, token = await assume_role(
            self.endpoint_url,
            role_arn,
            region=self.region,
            credentials=caller.as_tuple(),
            session_name=session_name,
        )
        return Credentials(key, secret, token)

    def advance_clock(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (0 to a year; never back) and return its
        reading: timers, quota windows and injected latencies see the time pass at once."""
        if self._proxy is None:
            return self.clock.advance(seconds)
        return self._proxy.advance_clock(seconds)

    def set_faults(self, spec: FaultSpec | str) -> FaultSpec:
        """Replace the fault rules (see ``engine.local.faults`` for the spec)."""
        return self.proxy.set_faults(spec)

    def set_fidelity(self, fidelity: Fidelity) -> None:
        self.proxy.fidelity = fidelity

    @property
    def fidelity(self) -> Fidelity:
        return self.proxy.fidelity

    async def reset(self, *, moto: bool = True) -> None:
        """Empty moto, the journal and the proxy's state; faults and fidelity back to the
        ones this component was started with. ``moto=False`` leaves moto's resources as they
        are (the caller puts back what it needs)."""
        await self.proxy.reset(faults=self._faults, fidelity=self._fidelity, moto=moto)

    async def start(self) -> None:
        try:
            await self._moto.start()
            self._proxy = Proxy(
                self._moto.url,
                fidelity=self._fidelity,
                faults=self._faults,
                clock=self.clock,
                journal=self.journal,
            )
            await self._proxy.start(self._port)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._proxy is not None:
                await self._proxy.stop()
            await self._moto.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class LocalAwsThread:
    """``LocalAws`` for synchronous code: its event loop runs in a thread of its own.

    with LocalAwsThread() as aws:
        aws.reset(); aws.set_faults("UpdateAlias:throttle=1"); aws.journal.entries
    """

    def __init__(self, **kwargs: Any) -> None:
        self._aws = LocalAws(**kwargs)
        self._portal: BlockingPortal | None = None
        self._stack = contextlib.ExitStack()

    @property
    def aws(self) -> LocalAws:
        """The async component (its methods must run on the portal's loop)."""
        return self._aws

    endpoint_url = property(lambda self: self._aws.endpoint_url)
    moto_url = property(lambda self: self._aws.moto_url)
    moto_pid = property(lambda self: self._aws.moto_pid)
    journal = property(lambda self: self._aws.journal)
    fidelity = property(lambda self: self._aws.fidelity)
    clock = property(lambda self: self._aws.clock)
    region = REGION
    credentials = Credentials()

    def client_kwargs(self, credentials: Credentials | None = None) -> dict[str, Any]:
        return self._aws.client_kwargs(credentials)

    def assume_role(self, role_arn: str, **kwargs: Any) -> Credentials:
        """``LocalAws.assume_role``, from synchronous code."""
        result: Credentials = self._call(lambda: self._aws.assume_role(role_arn, **kwargs))
        return result

    def advance_clock(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (see ``LocalAws.advance_clock``)."""
        result: float = self._call(self._aws.advance_clock, seconds)
        return result

    def _call(self, fn: Any, *args: Any) -> Any:
        if self._portal is None:
            raise LocalAwsError(
                "the embedded AWS is not running", hint="use `with LocalAwsThread()`"
            )
        return self._portal.call(fn, *args)

    def reset(self, *, moto: bool = True) -> None:
        self._call(lambda: self._aws.reset(moto=moto))

    def set_faults(self, spec: FaultSpec | str) -> FaultSpec:
        result: FaultSpec = self._call(self._aws.set_faults, spec)
        return result

    def set_fidelity(self, fidelity: Fidelity) -> None:
        self._call(self._aws.set_fidelity, fidelity)

    def __enter__(self) -> Self:
        try:
            self._portal = self._stack.enter_context(start_blocking_portal("asyncio"))
            self._stack.enter_context(self._portal.wrap_async_context_manager(self._aws))
        except BaseException:
            self._stack.close()
            self._portal = None
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._portal = None


@contextlib.contextmanager
def local_aws_thread(**kwargs: Any) -> Generator[LocalAwsThread, None, None]:
    """``with local_aws_thread(...) as aws:`` — a function form of ``LocalAwsThread``."""
    with LocalAwsThread(**kwargs) as aws:
        yield aws
