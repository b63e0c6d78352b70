"""A real headless Chromium (Debian's, driven by Playwright) and an engine serving the dashboard,
on the embedded AWS, for the browser tests.

    with browser_session() as browser:          # GLAM_CHROMIUM, never a downloaded browser
        page = browser.new_page(viewport=WIDE)
    with engine_thread(setup) as live:          # the engine on its own event loop and thread
        live.wait_for(lambda r: r.type == "DeploymentFinished")

The tests themselves are synchronous (Playwright's sync API refuses to run under a running
event loop): the engine runs in a blocking portal's thread, as ``tests.server.support.serving``
runs it, and the tests read what it appended from that thread's list.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from engine.events import RecordedEvent
from tests.runtime.support import Setup
from tests.server.support import API_TOKEN, Served, serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

CHROMIUM_ENV = "GLAM_CHROMIUM"
ARTIFACTS_ENV = "GLAM_TEST_ARTIFACTS"
DEFAULT_ARTIFACTS = Path(".artifacts") / "dashboard"
WIDE: ViewportSize = {"width": 1280, "height": 900}
NARROW: ViewportSize = {"width": 390, "height": 844}
# Debian's Chromium as a quiet, offline, throw-away browser: no GPU, no QUIC, no first-run
# pages, no background requests, updates or sync. Playwright gives each launch a fresh
# profile (user-data-dir) of its own in a temporary folder.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """The system Chromium, or a failure saying how to get it (a browser test never skips)."""
    path = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"no Chromium at {path}: the dashboard's browser tests need Debian's chromium "
            f"package (./scripts/test installs it as root: apt-get install chromium), or "
            f"{CHROMIUM_ENV} naming another Chromium",
            pytrace=False,
        )
    return path


@contextmanager
def browser_session() -> Iterator[Browser]:
    """Chromium launched by Playwright's sync API, closed with its driver on the way out."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir() -> Path:
    """Where the screenshots go: ``$GLAM_TEST_ARTIFACTS`` or ``.artifacts/dashboard``."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or DEFAULT_ARTIFACTS).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class LiveEngine:
    """An engine serving HTTP in a portal's thread: its URL, its events, a way to call into
    its loop."""

    served: Served
    portal: BlockingPortal

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def seen(self) -> list[RecordedEvent]:
        return list(self.served.seen)

    def wait_for(
        self, test: Callable[[RecordedEvent], bool], *, within: float = 30, after: int = 0
    ) -> RecordedEvent:
        """The first event past position ``after`` that passes ``test``."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for record in self.seen:
                if record.position > after and test(record):
                    return record
            time.sleep(0.05)
        raise AssertionError(f"no such event within {within} s (last: {self.seen[-1:]})")

    def last_position(self) -> int:
        seen = self.seen
        return seen[-1].position if seen else 0

    def log(self) -> list[RecordedEvent]:
        """The whole log, read from the store (the server's own appends too)."""
        records: list[RecordedEvent] = self.portal.call(self.served.engine.store.read_all)
        return records

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run the coroutine function ``func(*args)`` on the engine's loop."""
        return self.portal.call(func, *args)


@contextmanager
def engine_thread(setup: Setup, **changes: Any) -> Iterator[LiveEngine]:
    """``serving(setup)`` (the token ``API_TOKEN``) in a thread of its own until the block ends."""
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(serving(setup, **changes)) as served,
    ):
        yield LiveEngine(served, portal)


def weight_text(page: Page) -> str:
    return page.locator("#weight").inner_text().strip()


def overflow(page: Page) -> int:
    """How many pixels the page is wider than its viewport (0: nothing overflows)."""
    width: int = page.evaluate(
        "Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
    )
    return width


__all__ = ["API_TOKEN", "NARROW", "WIDE", "LiveEngine", "browser_session", "engine_thread"]
