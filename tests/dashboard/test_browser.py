"""The dashboard in a real headless Chromium, against an engine deploying on the embedded AWS.

One engine serves the whole module and the tests follow one story, in order: three functions
are created; a linear canary of ``orders`` moves its weight on an open page, which never
reloads; ``payments``' alarm fires mid-canary and its chart marks the rollback; the view at
the log position of ``orders``' 50 % step shows 50 %; ``search``'s ten-minute canary is
promoted from the page, refused without the token and done with it, by keyboard. Screenshots
of the pages at 1280 and 390 pixels go to ``$GLAM_TEST_ARTIFACTS`` (``.artifacts/dashboard``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, TrafficShifted
from engine.local.account import set_alarm_state
from tests.dashboard.support import (
    API_TOKEN,
    NARROW,
    WIDE,
    LiveEngine,
    engine_thread,
    overflow,
    weight_text,
)
from tests.runtime.support import ALARM, Setup, write_function

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FUNCTIONS = ("orders", "payments", "search")
QUICK = {"type": "ALL_AT_ONCE", "waitInterval": 0}
LINEAR = {"type": "LINEAR", "percent": 25, "waitInterval": 2}
CANARY_WITH_ALARM = {"type": "CANARY", "percent": 50, "waitInterval": 60}
SLOW_CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 600}
READY = {"waitInterval": 1, "maxRetries": 3}


def _write(setup: Setup, name: str, **kwargs: object) -> None:
    write_function(
        setup.repo,
        setup.outputs,
        name=name,
        prefix=f"apps/{name}/{name}",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def live(module_setup: Setup) -> Iterator[LiveEngine]:
    """The engine, once it has created the three functions."""
    for name in FUNCTIONS:
        _write(module_setup, name, traffic=QUICK, readiness=READY)
    module_setup.repo.commit("orders, payments and search")
    with engine_thread(module_setup) as engine:
        for name in FUNCTIONS:
            engine.wait_for(_finished(name), within=60)
        yield engine


def _finished(name: str, outcome: str | None = None) -> Callable[[RecordedEvent], bool]:
    def test(record: RecordedEvent) -> bool:
        event = record.event
        return (
            isinstance(event, DeploymentFinished)
            and record.stream.endswith(f":{name}")
            and (outcome is None or event.outcome == outcome)
        )

    return test


def _shifted(name: str, weight: float) -> Callable[[RecordedEvent], bool]:
    def test(record: RecordedEvent) -> bool:
        event = record.event
        return (
            isinstance(event, TrafficShifted)
            and record.stream.endswith(f":{name}")
            and event.weight == weight
        )

    return test


def _function_page(page: Page, live: LiveEngine, name: str, query: str = "") -> None:
    page.goto(f"{live.url}/dashboard/{query}")
    page.get_by_role("link", name=name, exact=True).click()
    page.wait_for_selector("h1")


def _shoot(page: Page, artifacts: Path, name: str) -> None:
    """A full-page screenshot at the page's width; at 390 px nothing may overflow sideways."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    path = artifacts / f"{name}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    if width <= NARROW["width"]:
        assert overflow(page) == 0, f"{name} overflows horizontally at {width} px"


def _tab_to(page: Page, selector: str, *, presses: int = 80) -> None:
    """Press Tab until the element ``selector`` has the focus (keyboard reachability)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_the_overview_lists_every_function(
    browser: Browser, live: LiveEngine, artifacts: Path
) -> None:
    """Every function is a row with its name, alias, versions and state, at both widths."""
    for viewport in (WIDE, NARROW):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{live.url}/dashboard/")
        rows = page.locator("#functions tbody tr[data-stream]")
        assert sorted(rows.locator("th a").all_inner_texts()) == list(FUNCTIONS)
        for row in rows.all():
            assert row.get_attribute("data-state") == "stable"
            assert "stable" in row.inner_text()
        assert page.get_by_role("heading", name=re.compile("Functions")).is_visible()
        _shoot(page, artifacts, "overview")
        page.close()


def test_a_canary_moves_the_weight_on_the_open_page_without_a_reload(
    browser: Browser, module_setup: Setup, live: LiveEngine
) -> None:
    """With orders' page open, a linear canary's steps (25 %, 50 %, 75 %) appear on it as the
    engine records them, through the event stream: the page never reloads."""
    page = browser.new_page(viewport=WIDE)
    _function_page(page, live, "orders")
    assert weight_text(page) == "0%"
    page.evaluate("window.glamNotReloaded = true")
    _write(module_setup, "orders", code="green", traffic=LINEAR, readiness=READY)
    module_setup.repo.commit("orders: green, linear")
    seen: list[str] = []
    for wanted in ("25%", "50%", "75%"):
        page.wait_for_function(
            "(w) => document.getElementById('weight').textContent.trim() === w",
            arg=wanted,
            timeout=15_000,
        )
        seen.append(weight_text(page))
    assert seen == ["25%", "50%", "75%"]
    live.wait_for(_finished("orders", "succeeded"), within=30)
    page.wait_for_selector("h1 .state-stable", timeout=10_000)
    assert page.evaluate("window.glamNotReloaded") is True
    assert page.locator("#live-state").inner_text() == "live"
    page.close()


def test_an_alarm_rollback_is_marked_on_the_function_chart(
    browser: Browser, module_setup: Setup, live: LiveEngine, artifacts: Path
) -> None:
    """payments' alarm goes to ALARM while its canary bakes: glam rolls back, and the chart
    shows the alarm and the rollback (marks with text labels, listed in the table too)."""
    start = live.last_position()
    _write(
        module_setup,
        "payments",
        code="green",
        traffic=CANARY_WITH_ALARM,
        readiness=READY,
        alarms=(ALARM,),
    )
    module_setup.repo.commit("payments: green, watched by an alarm")
    live.wait_for(_shifted("payments", 0.5), after=start)
    live.call(set_alarm_state, module_setup.endpoint_url, ALARM, "ALARM")
    try:
        live.wait_for(_finished("payments", "rolled_back"), after=start)
    finally:
        live.call(set_alarm_state, module_setup.endpoint_url, ALARM, "OK")
    # The overview gives the rollback's reason as text (it was shown as escaped markup).
    page = browser.new_page(viewport=WIDE)
    page.goto(f"{live.url}/dashboard/")
    row = page.locator('#functions tbody tr[data-stream$=":payments"]')
    assert "alarm" in row.locator(".reason").inner_text()
    assert "<span" not in row.inner_text()
    page.close()
    for viewport in (WIDE, NARROW):
        page = browser.new_page(viewport=viewport)
        _function_page(page, live, "payments")
        chart = page.locator("svg.chart")
        assert chart.locator("g.mark.rollback").count() == 1
        assert chart.locator("g.mark.alarm").count() >= 1
        text = chart.text_content() or ""
        assert "rollback" in text
        assert "ALARM" in text
        assert page.locator("#marks tr[data-kind=rollback]").count() == 1
        assert "rolled back" in page.locator("h1").inner_text()
        _shoot(page, artifacts, "function-rolled-back")
        page.get_by_role("link", name=re.compile(r"^[0-9a-f-]{8,}$")).first.click()
        page.wait_for_selector("h1")
        _shoot(page, artifacts, "deployment")
        page.close()


def test_time_travel_to_mid_canary_shows_the_canary_weight(
    browser: Browser, live: LiveEngine, artifacts: Path
) -> None:
    """At the log position of orders' 50 % step the function page and the overview show 50 %
    under a historical banner; the position field gets there from the live page."""
    step = live.wait_for(_shifted("orders", 0.5))
    page = browser.new_page(viewport=WIDE)
    _function_page(page, live, "orders")
    page.locator("#at-field").fill(str(step.position))
    page.locator("#at-field").press("Enter")
    page.wait_for_selector(".banner.historical")
    assert f"at={step.position}" in page.url
    assert weight_text(page) == "50%"
    assert f"after event {step.position}" in page.locator(".banner.historical").inner_text()
    assert page.locator("body").get_attribute("data-live") == "0"
    _shoot(page, artifacts, "function-mid-canary")
    page.goto(f"{live.url}/dashboard/?at={step.position}")
    orders = page.locator("#functions tr[data-stream$=':orders']")
    assert "50%" in orders.locator("td.weight").inner_text()
    assert orders.get_attribute("data-state") in ("shifting", "baking")
    page.close()


def test_a_promote_needs_the_token_and_works_with_it_by_keyboard(
    browser: Browser, module_setup: Setup, live: LiveEngine, artifacts: Path
) -> None:
    """search's ten-minute canary: without signing in there is no button; a wrong token is
    refused; a form posted after the session is gone is refused with the one-line reason;
    signed in, a promote given with the keyboard is recorded and the new version gets all the
    traffic at once."""
    start = live.last_position()
    _write(module_setup, "search", code="green", traffic=SLOW_CANARY, readiness=READY)
    module_setup.repo.commit("search: green, slow canary")
    live.wait_for(_shifted("search", 0.5), after=start)
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    _function_page(page, live, "search")
    assert page.locator("form.command").count() == 0
    page.get_by_role("link", name="Sign in with the API token").click()
    page.locator("#token").fill("not-the-token")
    page.locator("#token").press("Enter")
    assert "that is not the server's API token" in page.locator(".banner.problem").inner_text()
    page.locator("#token").fill(API_TOKEN)
    page.locator("#token").press("Enter")
    page.wait_for_selector("form.command")
    assert page.url.endswith(page.url.split("/dashboard")[1])  # back on search's page
    assert "search" in page.locator("h1").inner_text()

    # The session goes (a rotated token does the same): the form on the page is refused.
    context.clear_cookies()
    page.locator("#reason-promote").fill("looks good")
    page.locator("form.command button[value=promote]").click()
    refused = page.locator(".error-line")
    assert refused.inner_text() == "sign in with the API token to give operator commands"
    assert "\n" not in refused.inner_text()
    assert not [r for r in live.log() if r.type == "OperatorCommandIssued"]

    page.get_by_role("link", name="Back").click()
    page.get_by_role("link", name="Sign in with the API token").click()
    page.locator("#token").fill(API_TOKEN)
    page.locator("#token").press("Enter")
    page.wait_for_selector("form.command")
    page.locator("body").focus()
    _tab_to(page, "#reason-promote")
    page.keyboard.type("p99 is flat")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "promote"
    _shoot(page, artifacts, "function-operator")
    page.keyboard.press("Enter")
    notice = page.locator(".banner.notice")
    assert re.fullmatch(r"Done: promote recorded as event \d+", notice.inner_text())
    issued = [r for r in live.log() if r.type == "OperatorCommandIssued"]
    assert [(r.meta.actor, getattr(r.event, "reason", "")) for r in issued] == [
        ("dashboard", "p99 is flat")
    ]
    # The canary is cut short: all the traffic on the new version at once (its last bake
    # follows), and the open page shows it.
    live.wait_for(_shifted("search", 1.0), after=start, within=20)
    page.wait_for_function(
        "() => document.getElementById('weight').textContent.trim() === '100%'", timeout=10_000
    )
    context.close()
