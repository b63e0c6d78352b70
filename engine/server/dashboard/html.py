"""The small pieces of HTML every page repeats, in Python: a state badge, links that keep the
position shown, and the overview's row. A page of a thousand rows spends its time here, and a
Python function is many times faster than a Jinja macro call (the templates call these same
functions: they are the environment's globals, ``render``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from markupsafe import Markup, escape

from projections.functions import FunctionRow

if TYPE_CHECKING:
    from engine.server.dashboard.render import Moment

PREFIX = "/dashboard"
NONE = "—"
_WEIGHT = ' class="weight"'


class OverviewLine(Protocol):
    """What the overview's row shows (``pages.Line``)."""

    @property
    def row(self) -> FunctionRow: ...
    @property
    def bake_left(self) -> str: ...
    @property
    def drift(self) -> list[str]: ...


def percent(value: float) -> str:
    return f"{value:.0%}"


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.0f} min"


def state(value: str) -> Markup:
    """A state written out, with its class (the stylesheet adds a symbol, never only colour)."""
    e = escape(value)
    return Markup(f'<span class="state state-{e}">{escape(value.replace("_", " "))}</span>')  # noqa: S704 - escaped


def at_link(href: str, moment: Moment | None) -> str:
    """``href`` at the position shown, when the page is historical."""
    return f"{href}?at={moment.at}" if moment is not None and moment.historical else href


def _link(href: str, label: str) -> Markup:
    return Markup(f'<a href="{escape(href)}">{escape(label)}</a>')  # noqa: S704 - escaped


def fn_link(stream: str, label: str, moment: Moment | None) -> Markup:
    return _link(at_link(f"{PREFIX}/functions/{quote(stream)}", moment), label)


def dep_link(deployment_id: str, moment: Moment | None) -> Markup:
    return _link(at_link(f"{PREFIX}/deployments/{quote(deployment_id)}", moment), deployment_id)


def ev_link(position: int) -> Markup:
    return _link(f"{PREFIX}/events/{position}", str(position))


# Where a row's link says which position it shows: the same row at another ``?at=`` is the
# same HTML but for that (``at_row``). Names, versions and states never hold this character.
AT_MARK = "\x00"


def at_row(row: Markup, moment: Moment) -> Markup:
    """A row made by ``overview_row`` for the position ``moment`` shows."""
    return Markup(row.replace(AT_MARK, f"?at={moment.at}" if moment.historical else ""))  # noqa: S704 - a fixed text put in


def overview_row(line: OverviewLine) -> Markup:
    """One function's row of the overview (a card at 390 px: each cell has its label), its
    link to be completed by ``at_row``. Built with f-strings of escaped values:
    ``Markup.format`` costs ten times as much per cell."""
    r = line.row
    weight: str = NONE
    if r.new_version:
        weight = (
            f'<span class="bar" aria-hidden="true"><span style="width: {round(r.weight * 100)}%">'
            f"</span></span>{percent(r.weight)}"
        )
    outcome: str = NONE
    if r.last_outcome:
        outcome = str(state(r.last_outcome))  # Markup + str would escape what is added
        if r.last_reason:
            outcome += f' <span class="reason">{escape(r.last_reason)}</span>'
    drift = "none"
    if line.drift:
        drift = f'<span class="state state-drift">drift</span> {escape(", ".join(line.drift))}'
    cells = (
        ("Account / region", escape(f"{r.account} {r.region}")),
        ("Alias", escape(r.alias or NONE)),
        ("Stable", escape(r.stable_version or NONE)),
        ("New", escape(r.new_version or NONE)),
        ("Weight", weight),
        ("State", state(r.state)),
        ("Bake left", escape(line.bake_left or NONE)),
        ("Last outcome", outcome),
        ("Drift", drift),
    )
    tds = "".join(
        f'<td data-label="{label}"{_WEIGHT if label == "Weight" else ""}>{value}</td>'
        for label, value in cells
    )
    return Markup(  # noqa: S704 - every value above is escaped or made here
        f'<tr data-stream="{escape(r.stream)}" data-state="{escape(r.state)}">'
        f'<th scope="row" data-label="Function">'
        f'<a href="{PREFIX}/functions/{escape(quote(r.stream))}{AT_MARK}">{escape(r.name)}</a></th>'
        f"{tds}</tr>"
    )
