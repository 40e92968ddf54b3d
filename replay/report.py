"""The backtest report: one self-contained HTML file (inline SVG, inline CSS, no scripts, no
external assets) and a JSON file with the same numbers.

Per rule and key: the metric over time (one line per side, its baseline dashed), alerts as
markers, labelled events as shaded spans; a summary table (alerts, recall, precision,
detection delay per rule and side).
Untrusted text (keys, rule names, labels) reaches the page only through Jinja autoescaping; the
SVG geometry is computed here as plain numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from finsentry.replay.backtest import BacktestResult
from finsentry.replay.evaluator import key_matches

WIDTH, HEIGHT = 760, 170
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 10, 24
MAX_POINTS = 600  # per line: buckets keep their maximum, so spikes stay visible
COLORS = ("#1f77b4", "#d62728")


@dataclass
class Line:
    side: str
    color: str
    points: str  # "x,y x,y ..." (numbers only)
    baseline: str = ""  # the rule's baseline, same form (dashed)
    markers: list[tuple[float, float, str]] = field(default_factory=list)


@dataclass
class Chart:
    rule: str
    key: str
    metric: str
    lines: list[Line] = field(default_factory=list)
    spans: list[tuple[float, float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)


class _Scale:
    def __init__(self, start: datetime, end: datetime, y_max: float) -> None:
        self.t0, self.t1 = start.timestamp(), end.timestamp()
        self.y_max = y_max if y_max > 0 else 1.0

    def x(self, t: datetime) -> float:
        span = max(self.t1 - self.t0, 1.0)
        frac = min(1.0, max(0.0, (t.timestamp() - self.t0) / span))
        return round(LEFT + frac * (WIDTH - LEFT - RIGHT), 1)

    def y(self, v: float) -> float:
        frac = min(1.0, max(0.0, v / self.y_max))
        return round(TOP + (1 - frac) * (HEIGHT - TOP - BOTTOM), 1)


def _downsample(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    if len(points) <= MAX_POINTS:
        return points
    step = -(-len(points) // MAX_POINTS)
    return [max(points[i:i + step], key=lambda p: p[1]) for i in range(0, len(points), step)]


def build_charts(result: BacktestResult) -> list[Chart]:
    charts = []
    for rule in result.rules:
        keys: list[str] = []
        for side in result.sides:
            o = side.outcome(rule)
            if o is not None:
                keys += [k for k in o.series if k not in keys]
                keys += [a.key for a in o.alerts if a.key not in keys]
        for key in keys[:12]:
            charts.append(_chart(result, rule, key))
    return charts


def _chart(result: BacktestResult, rule: str, key: str) -> Chart:
    sides = [(s, s.outcome(rule)) for s in result.sides]
    values = [p.value for _, o in sides if o for p in o.series.get(key, [])]
    values += [p.baseline for _, o in sides if o for p in o.series.get(key, [])
               if p.baseline is not None]
    values += [a.value for _, o in sides if o for a in o.alerts if a.key == key]
    top = max(values, default=1.0)
    scale = _Scale(result.start, result.end, top * 1.1 if top > 0 else 1.0)
    metric = next((o.metric for _, o in sides if o), "value")
    chart = Chart(rule, key, metric)
    for i, (side, o) in enumerate(sides):
        if o is None:
            continue
        pts = _downsample([(p.minute, p.value) for p in o.series.get(key, [])])
        base = _downsample([(p.minute, p.baseline) for p in o.series.get(key, [])
                            if p.baseline is not None])
        line = Line(side.name, COLORS[i % len(COLORS)],
                    " ".join(f"{scale.x(t)},{scale.y(v)}" for t, v in pts),
                    " ".join(f"{scale.x(t)},{scale.y(v)}" for t, v in base))
        line.markers = [(scale.x(a.at), scale.y(a.value),
                         f"{side.name}: alert at {a.at:%Y-%m-%d %H:%M} UTC, {metric} "
                         f"{a.value:.3g}") for a in o.alerts if a.key == key]
        chart.lines.append(line)
    chart.spans = [(scale.x(e.start), max(scale.x(e.end) - scale.x(e.start), 1.5),
                    f"labelled event {e.label or ''} {e.start:%Y-%m-%d %H:%M}-{e.end:%H:%M} UTC")
                   for e in result.events if key_matches(key, e.key) and e.applies_to(rule)]
    for k in range(5):
        t = datetime.fromtimestamp(scale.t0 + (scale.t1 - scale.t0) * k / 4, tz=result.start.tzinfo)
        chart.x_ticks.append((scale.x(t), f"{t:%m-%d %H:%M}"))
    chart.y_ticks = [(scale.y(scale.y_max * k / 4), f"{scale.y_max * k / 4:.3g}")
                     for k in range(5)]
    return chart


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if pct else f"{value:.1f}"


def render_html(result: BacktestResult, title: str = "finsentry backtest") -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("finsentry.replay", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["fmt"] = _fmt
    rows = []
    for rule in result.rules:
        for side in result.sides:
            o = side.outcome(rule)
            if o is not None:
                rows.append((rule, side, o))
    return env.get_template("backtest.html.j2").render(
        r=result, title=title, rows=rows, charts=build_charts(result), width=WIDTH,
        height=HEIGHT, left=LEFT, right=RIGHT, top=TOP, bottom=BOTTOM, colors=COLORS)


def write_report(result: BacktestResult, html_path: Path,
                 json_path: Path | None = None) -> tuple[Path, Path]:
    """Write the HTML report and its JSON twin (default: same name, .json)."""
    json_path = json_path or html_path.with_suffix(".json")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(result), encoding="utf-8")
    json_path.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    return html_path, json_path
