"""The function page's chart: the share of the alias's traffic on the new version, event by
event, with each deployment's start, its alarm observations, rollbacks and outcomes marked.
The marks are evenly spaced in log order, not by time: a canary's seconds would otherwise be
a sliver beside the days between deployments (each mark's time is in its tooltip and the
table; the axis shows the first and the last). Pure:
events in, SVG text out, readable without JavaScript (every mark has a text label and a
``<title>``; the page lists the same marks in a table below the chart).

    chart = weight_chart(records)          # a function stream's events, in order
    chart.svg                              # the <svg> element, escaped
    chart.marks                            # what it marks, for the table
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from markupsafe import Markup, escape

from engine.events import RecordedEvent
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    RollbackStarted,
    TrafficShifted,
)

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 28, 40  # margins: the axis labels live there
DEPLOYMENTS = 12  # the last deployments charted; older ones are in the history table

MarkKind = Literal["deploy", "shift", "alarm", "ok", "rollback", "finished"]


@dataclass(frozen=True, slots=True)
class Mark:
    """One thing the chart shows: when, at which position, what, and the weight then."""

    kind: MarkKind
    position: int
    at: datetime
    label: str
    weight: float
    deployment_id: str


@dataclass(frozen=True, slots=True)
class Chart:
    svg: Markup
    marks: tuple[Mark, ...]


def weight_chart(records: list[RecordedEvent], *, deployments: int = DEPLOYMENTS) -> Chart:
    """The chart of a function stream's events (see the module docstring)."""
    marks = _marks(records)
    starts = [m for m in marks if m.kind == "deploy"]
    if len(starts) > deployments:
        first = starts[-deployments].position
        marks = [m for m in marks if m.position >= first]
    return Chart(_svg(marks), tuple(marks))


def _marks(records: list[RecordedEvent]) -> list[Mark]:
    marks: list[Mark] = []
    weight = 0.0
    for record in records:
        event = record.event
        at, position = record.recorded_at, record.position
        match event:
            case DeploymentRequested():
                weight = 0.0
                label = f"{event.action} {event.deployment_id[:8]}"
                marks.append(Mark("deploy", position, at, label, weight, event.deployment_id))
            case TrafficShifted():
                weight = event.weight
                label = f"{weight:.0%} to version {event.new_version}"
                marks.append(Mark("shift", position, at, label, weight, event.deployment_id))
            case AlarmObserved():
                kind: MarkKind = "ok" if event.state == "OK" else "alarm"
                label = f"{event.alarm}: {event.state}"
                marks.append(Mark(kind, position, at, label, weight, event.deployment_id))
            case RollbackStarted():
                label = f"rollback: {event.reason}"
                marks.append(Mark("rollback", position, at, label, weight, event.deployment_id))
            case DeploymentFinished():
                weight = 0.0
                label = event.outcome.replace("_", " ")
                marks.append(Mark("finished", position, at, label, weight, event.deployment_id))
            case _:
                pass
    return marks


def _svg(marks: list[Mark]) -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    title = "Traffic on the new version over time"
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{title}</title>',
    ]
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):  # the y axis: a grid line and its label
        gy = TOP + plot_h * (1 - share)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{share:.0%}</text>"
        )
    if not marks:
        out.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no deployment yet</text></svg>"
        )
        return Markup("".join(out))  # noqa: S704 - every value in it is a number or escaped
    start, end = marks[0].at, marks[-1].at
    step = plot_w / max(1, len(marks) - 1)
    xs = [LEFT + step * i for i in range(len(marks))]

    def y(weight: float) -> float:
        return TOP + plot_h * (1 - weight)

    # The weight as steps: it holds until the next change.
    path: list[str] = []
    last: float | None = None
    for mark, mx in zip(marks, xs, strict=True):
        if mark.kind not in ("deploy", "shift", "finished"):
            continue
        if last is None:
            path.append(f"M{mx:.1f},{y(mark.weight):.1f}")
        else:
            path.append(f"H{mx:.1f}V{y(mark.weight):.1f}")
        last = mark.weight
    if path:
        out.append(f'<path class="weight" d="{"".join(path)}"/>')
    for mark, mx in zip(marks, xs, strict=True):
        out.append(_mark(mark, mx, y(mark.weight)))
    out.append(
        f'<text class="axis" x="{LEFT}" y="{HEIGHT - 8}">{escape(_clock(start))}</text>'
        f'<text class="axis" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{escape(_clock(end))}</text>"
    )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every value in it is a number or escaped


def _label(cx: float, gap: float, y: float, text: str) -> str:
    """A mark's text beside it: to its right, or to its left in the right third of the chart
    (so that no label runs past the edge)."""
    if cx > LEFT + (WIDTH - LEFT - RIGHT) * 2 / 3:
        return f'<text x="{cx - gap:.1f}" y="{y:.1f}" text-anchor="end">{text}</text>'
    return f'<text x="{cx + gap:.1f}" y="{y:.1f}">{text}</text>'


def _mark(mark: Mark, cx: float, cy: float) -> str:
    tip = f"<title>{escape(_clock(mark.at))} · event {mark.position} · {escape(mark.label)}</title>"
    css = f"mark {mark.kind}"
    data = f'data-position="{mark.position}" data-kind="{mark.kind}"'
    match mark.kind:
        case "deploy":
            top = TOP - 4
            return (
                f'<g class="{css}" {data}>{tip}<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top}" '
                f'y2="{HEIGHT - BOTTOM}"/>{_label(cx, 3, TOP - 8, escape(mark.label))}</g>'
            )
        case "shift":
            return (
                f'<g class="{css}" {data}>{tip}<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4"/>'
                f"{_label(cx, 6, cy - 6, f'{mark.weight:.0%}')}</g>"
            )
        case "ok":
            base = HEIGHT - BOTTOM
            return (
                f'<g class="{css}" {data}>{tip}<rect x="{cx - 3:.1f}" y="{base - 3}" '
                f'width="6" height="6"/></g>'
            )
        case "alarm":
            base = HEIGHT - BOTTOM
            return (
                f'<g class="{css}" {data}>{tip}<path d="M{cx:.1f},{base - 12} '
                f'l7,12 h-14 z"/>{_label(cx, 8, base - 16, "ALARM")}</g>'
            )
        case "rollback":
            return (
                f'<g class="{css}" {data}>{tip}<path d="M{cx - 6:.1f},{cy - 6:.1f} l12,12 '
                f'm0,-12 l-12,12"/>{_label(cx, 8, cy + 16, "rollback")}</g>'
            )
        case "finished":
            return (
                f'<g class="{css}" {data}>{tip}<rect x="{cx - 4:.1f}" y="{cy - 4:.1f}" '
                f'width="8" height="8"/>{_label(cx, 4, cy - 10, escape(mark.label))}</g>'
            )


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")
