"""Chart geometry for the preview: numbers in, coordinates out (the template draws them).

Long time-series rows (time, label columns, value columns) become one line per label and value
column, stacked when the panel stacks; heatmaps one cell per (row label, time bucket); pie charts
SVG arc paths. Labels stay plain strings here: the Jinja template escapes them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

from finsentry.dashboards.spec import Panel
from finsentry.store.base import Row

HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 48, 22, 8, 22
PX_PER_COLUMN = 46  # a 24-column Grafana row is ~1100 px wide
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
SENTIMENT_COLOURS = {"negative": "#d62728", "neutral": "#7f7f7f", "positive": "#2ca02c"}


def _columns(panel: Panel, kind: str) -> list[str]:
    return [name for name, k in panel.columns if k == kind]


def _nice(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _x_axis(start: datetime, end: datetime, width: int) -> tuple[Any, list[tuple[float, str]]]:
    t0, t1 = start.timestamp(), end.timestamp()
    span = max(1.0, t1 - t0)
    inner = width - LEFT - RIGHT

    def x(when: datetime) -> float:
        return round(LEFT + (when.timestamp() - t0) / span * inner, 1)

    fmt = "%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M"
    ticks = [(round(LEFT + i / 4 * inner, 1),
              datetime.fromtimestamp(t0 + i / 4 * span, tz=start.tzinfo).strftime(fmt))
             for i in range(5)]
    return x, ticks


def series(panel: Panel, rows: list[Row]) -> dict[str, dict[datetime, float]]:
    """label -> {time: value} from long rows."""
    labels, values = _columns(panel, "string"), _columns(panel, "number")
    out: dict[str, dict[datetime, float]] = defaultdict(dict)
    for row in rows:
        key = " · ".join(str(row[c]) or "(none)" for c in labels)
        for column in values:
            name = f"{key} · {column}" if key and len(values) > 1 else (key or column)
            value = row.get(column)
            if isinstance(value, int | float) and math.isfinite(value):
                out[name][row["time"]] = out[name].get(row["time"], 0.0) + float(value)
    return dict(out)


def _colour(label: str, index: int) -> str:
    return SENTIMENT_COLOURS.get(label.split(" · ")[0], PALETTE[index % len(PALETTE)])


def lines(panel: Panel, rows: list[Row], start: datetime, end: datetime,
          annotations: list[Row], width: int) -> dict[str, Any]:
    data = series(panel, rows)
    times = sorted({t for points in data.values() for t in points})
    if panel.stack:
        running: dict[datetime, float] = defaultdict(float)
        for label in data:
            for t in times:
                running[t] += data[label].get(t, 0.0)
                data[label][t] = running[t]
    values = [v for points in data.values() for v in points.values()]
    low, high = min([0.0, *values]), max([0.0, *values])
    if high == low:
        high = low + 1
    inner_h = HEIGHT - TOP - BOTTOM
    x, x_ticks = _x_axis(start, end, width)

    def y(value: float) -> float:
        return round(TOP + (high - value) / (high - low) * inner_h, 1)

    drawn = []
    for index, (label, points) in enumerate(data.items()):
        coords = " ".join(f"{x(t)},{y(v)}" for t, v in sorted(points.items()))
        drawn.append({"label": label, "colour": _colour(label, index), "points": coords,
                      "single": len(points) == 1, "first": coords.split(" ")[0].split(",")})
    bands = []
    for note in annotations:
        begin, finish = note.get("time"), note.get("timeEnd")
        if isinstance(begin, datetime):
            x1 = x(begin)
            x2 = x(finish) if isinstance(finish, datetime) else x1
            bands.append({"x": x1, "w": max(1.5, x2 - x1), "text": str(note.get("text", ""))})
    return {"type": "lines", "width": width, "height": HEIGHT, "series": drawn,
            "x_ticks": x_ticks, "y_ticks": [(y(v), _nice(v)) for v in (low, (low + high) / 2,
                                                                         high)],
            "left": LEFT, "right": width - RIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM,
            "zero": y(0.0), "bands": bands}


def heatmap(panel: Panel, rows: list[Row], start: datetime, end: datetime,
            width: int) -> dict[str, Any]:
    data = series(panel, rows)
    labels = sorted(data)
    times = sorted({t for points in data.values() for t in points})
    x, x_ticks = _x_axis(start, end, width)
    step = (x(times[1]) - x(times[0])) if len(times) > 1 else 6.0
    row_h = (HEIGHT - TOP - BOTTOM) / max(1, len(labels))
    peak = max([v for points in data.values() for v in points.values()] or [1.0]) or 1.0
    cells = []
    for r, label in enumerate(labels):
        for t, value in data[label].items():
            alpha = 0.08 + 0.92 * max(0.0, value) / peak
            cells.append({"x": x(t), "y": round(TOP + r * row_h, 1), "w": round(max(1.0, step), 1),
                          "h": round(row_h - 1, 1), "opacity": round(alpha, 3),
                          "title": f"{label} {t:%H:%M}: {value:.2f}"})
    return {"type": "heatmap", "width": width, "height": HEIGHT, "cells": cells,
            "rows": [(round(TOP + (r + 0.6) * row_h, 1), label) for r, label in enumerate(labels)],
            "x_ticks": x_ticks, "left": LEFT, "bottom": HEIGHT - BOTTOM}


def pie(panel: Panel, rows: list[Row]) -> dict[str, Any]:
    label_col = _columns(panel, "string")[0]
    value_col = _columns(panel, "number")[0]
    items = [(str(r[label_col]), float(r[value_col])) for r in rows if r[value_col] > 0]
    total = sum(v for _, v in items) or 1.0
    cx, cy, radius = 110, 110, 100
    angle, slices = -math.pi / 2, []
    for index, (label, value) in enumerate(items):
        sweep = 2 * math.pi * value / total
        end = angle + sweep
        x1, y1 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        x2, y2 = cx + radius * math.cos(end), cy + radius * math.sin(end)
        large = 1 if sweep > math.pi else 0
        path = (f"M{cx},{cy} L{x1:.1f},{y1:.1f} A{radius},{radius} 0 {large} 1 {x2:.1f},{y2:.1f} Z"
                if len(items) > 1 else "")
        slices.append({"path": path, "colour": PALETTE[index % len(PALETTE)], "label": label,
                       "value": _nice(value), "share": f"{value / total:.0%}"})
        angle = end
    return {"type": "pie", "width": 420, "height": 220, "cx": cx, "cy": cy, "r": radius,
            "slices": slices}


def chart(panel: Panel, rows: list[Row], start: datetime, end: datetime,
          annotations: list[Row]) -> dict[str, Any]:
    """What the template draws for one panel."""
    if not rows:
        return {"type": "empty"}
    width = max(320, panel.width * PX_PER_COLUMN)
    if panel.kind == "timeseries":
        return lines(panel, rows, start, end, annotations, width)
    if panel.kind == "heatmap":
        return heatmap(panel, rows, start, end, width)
    if panel.kind == "stat":
        value = next(iter(rows[0].values()))
        return {"type": "stat", "value": _nice(float(value))}
    if panel.kind == "piechart":
        return pie(panel, rows)
    return {"type": "table", "columns": [name for name, _ in panel.columns], "rows": rows,
            "links": dict(panel.links)}
