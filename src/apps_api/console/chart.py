"""The 24-hour delivery chart of an app, drawn on the server as SVG geometry (no charting library).

Successful attempts are solid bars, failed ones hatched bars beside them, the p95 duration a
dashed line with square markers on its own axis: each series differs in shape, not only in
colour, and the page also shows the numbers as a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

WIDTH = 720
HEIGHT = 240
LEFT = 44
RIGHT = 52
TOP = 16
BOTTOM = 36
HOURS = 24


@dataclass
class Hour:
    start: datetime
    successful: int
    failed: int
    p95: int | None


@dataclass
class Chart:
    hours: list[Hour]
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[dict[str, Any]] = field(default_factory=list)
    line: str = ""
    markers: list[dict[str, Any]] = field(default_factory=list)
    count_ticks: list[dict[str, Any]] = field(default_factory=list)
    duration_ticks: list[dict[str, Any]] = field(default_factory=list)
    hour_labels: list[dict[str, Any]] = field(default_factory=list)
    plot: dict[str, float] = field(default_factory=dict)
    total_successful: int = 0
    total_failed: int = 0


def _nice_max(value: float) -> int:
    """A round axis maximum >= value (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def hours_of(rows: dict[datetime, Any], *, now: datetime) -> list[Hour]:
    """The 24 hours up to `now` (oldest first), zero where nothing finished."""
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = []
    for back in range(HOURS - 1, -1, -1):
        start = current - timedelta(hours=back)
        row = rows.get(start)
        p95 = row["p95"] if row is not None else None
        hours.append(
            Hour(
                start=start,
                successful=int(row["successful"]) if row is not None else 0,
                failed=int(row["failed"]) if row is not None else 0,
                p95=round(p95) if p95 is not None else None,
            )
        )
    return hours


def _bars(hour: Hour, *, x: float, slot: float, label: str, max_count: int) -> list[dict[str, Any]]:
    """The hour's two bars: successful (solid), then failed (hatched) beside it."""
    plot_height = HEIGHT - TOP - BOTTOM
    bars = []
    for offset, kind, value in (
        (slot * 0.12, "successful", hour.successful),
        (slot * 0.52, "failed", hour.failed),
    ):
        height = plot_height * value / max_count
        bars.append(
            {
                "x": round(x + offset, 1),
                "y": round(TOP + plot_height - height, 1),
                "width": round(slot * 0.36, 1),
                "height": round(height, 1),
                "kind": kind,
                "title": f"{label} UTC: {value} {kind}",
            }
        )
    return bars


def _axis_maxima(hours: list[Hour]) -> tuple[int, int]:
    """The count axis's and the duration axis's maxima."""
    max_count = max((max(hour.successful, hour.failed) for hour in hours), default=0)
    max_p95 = max((hour.p95 or 0 for hour in hours), default=0)
    return _nice_max(max_count), _nice_max(max_p95)


def build(hours: list[Hour]) -> Chart:
    """Bars, line and axes in SVG user units."""
    chart = Chart(hours=hours)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_height
    chart.plot = {"left": LEFT, "top": TOP, "right": LEFT + plot_width, "bottom": bottom}
    max_count, max_p95 = _axis_maxima(hours)
    slot = plot_width / len(hours)
    points = []
    for index, hour in enumerate(hours):
        x = LEFT + index * slot
        label = hour.start.strftime("%H:00")
        chart.bars.extend(_bars(hour, x=x, slot=slot, label=label, max_count=max_count))
        if hour.p95 is not None:
            px, py = round(x + slot / 2, 1), round(bottom - plot_height * hour.p95 / max_p95, 1)
            points.append(f"{px},{py}")
            chart.markers.append({"x": px - 3, "y": py - 3, "title": f"{label} UTC: p95 {hour.p95} ms"})
        if index % 3 == 0:
            chart.hour_labels.append({"x": round(x + slot / 2, 1), "y": bottom + 16, "text": label})
    chart.line = " ".join(points)
    for fraction in (0, 0.5, 1):
        y = round(bottom - plot_height * fraction, 1)
        chart.count_ticks.append({"y": y, "text": f"{max_count * fraction:g}"})
        chart.duration_ticks.append({"y": y, "text": f"{max_p95 * fraction:g} ms"})
    chart.total_successful = sum(hour.successful for hour in hours)
    chart.total_failed = sum(hour.failed for hour in hours)
    return chart
