"""Renderer 2: every dashboard as a self-contained HTML page, without Grafana.

Runs each panel's SQL (and each variable's, in order) with the macros expanded for the chosen
range (`macros.expand`) against the configured store, then draws the same panels: time series
and heatmaps as inline SVG, stats as numbers, pie charts as SVG, tables as HTML tables. No
scripts or external resources are needed; everything untrusted goes through Jinja's autoescape
and links only keep http(s) URLs. The embedded demo's report is this preview.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from finsentry.dashboards.catalog import DASHBOARDS
from finsentry.dashboards.macros import ALL, expand, interval_for
from finsentry.dashboards.spec import Dashboard, Panel
from finsentry.dashboards.svg import chart
from finsentry.errors import FinsentryError
from finsentry.store.base import Row, Store

log = logging.getLogger(__name__)


@dataclass
class PanelResult:
    panel: Panel
    sql: str = ""
    rows: list[Row] = field(default_factory=list)
    error: str | None = None


@dataclass
class DashboardResult:
    spec: Dashboard
    selected: dict[str, list[str]]
    options: dict[str, list[str]]
    panels: list[PanelResult]
    annotations: list[Row] = field(default_factory=list)


def variable_options(store: Store, spec: Dashboard, selected: dict[str, list[str]],
                     start: datetime, end: datetime) -> dict[str, list[str]]:
    """Run each variable's query in dashboard order (as Grafana refreshes them); a variable
    without a selection gets its default: All, or the first option when All is not offered."""
    options: dict[str, list[str]] = {}
    for variable in spec.variables:
        try:
            rows = store.query(expand(variable.sql, selected, options, start, end))
        except FinsentryError as exc:
            log.warning("variable %s of %s: %s", variable.name, spec.uid, exc)
            rows = []
        options[variable.name] = [str(next(iter(row.values()))) for row in rows]
        if variable.name not in selected:
            if variable.include_all:
                selected[variable.name] = [ALL]
            else:
                first = options[variable.name][:1] or [variable.default or ""]
                selected[variable.name] = [variable.default or first[0]]
    return options


def run_dashboard(store: Store, spec: Dashboard, start: datetime, end: datetime,
                  selected: Mapping[str, Sequence[str]] | None = None) -> DashboardResult:
    """Every panel's rows (or its one-line error) for the range and selection."""
    chosen = {k: list(v) for k, v in (selected or {}).items()}
    options = variable_options(store, spec, chosen, start, end)
    interval = interval_for(start, end)
    results = []
    for panel in spec.panels:
        result = PanelResult(panel)
        try:
            result.sql = expand(panel.sql, chosen, options, start, end, interval)
            result.rows = store.query(result.sql)
        except FinsentryError as exc:
            result.error = str(exc).splitlines()[0][:300]
            log.warning("panel %r of %s: %s", panel.title, spec.uid, result.error)
        results.append(result)
    annotations: list[Row] = []
    for annotation in spec.annotations:
        try:
            annotations += store.query(expand(annotation.sql, chosen, options, start, end))
        except FinsentryError as exc:
            log.warning("annotation %r of %s: %s", annotation.name, spec.uid, exc)
    return DashboardResult(spec, chosen, options, results, annotations)


def _busiest_ticker(store: Store, run_id: str, start: datetime, end: datetime) -> str | None:
    try:
        rows = store.query(
            "SELECT ticker, sum(docs) AS n FROM sentiment_rollup WHERE run_id = %(run)s "
            "AND minute >= %(start)s AND minute <= %(end)s AND ticker != '' "
            "GROUP BY ticker ORDER BY n DESC, ticker LIMIT 1",
            {"run": run_id, "start": start, "end": end})
    except FinsentryError:
        return None
    return str(rows[0]["ticker"]) if rows else None


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("finsentry.dashboards", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["cell"] = _cell
    env.globals["safe_url"] = _safe_url
    return env


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _safe_url(template: str, row: Row) -> str | None:
    """A table link for `row`: only `${__data.fields.X}` links to http(s) URLs survive."""
    prefix = "${__data.fields."
    if not (template.startswith(prefix) and template.endswith("}")):
        return None
    url = str(row.get(template[len(prefix):-1], ""))
    return url if url.startswith(("https://", "http://")) else None


def render_dashboard(result: DashboardResult, start: datetime, end: datetime,
                     pages: Sequence[Dashboard], run_id: str, base: str = "") -> str:
    """One page; `base` prefixes the links to the other pages (for copies kept elsewhere)."""
    panels = [{"result": r, "chart": chart(r.panel, r.rows, start, end, result.annotations)
               if not r.error else None} for r in result.panels]
    return str(_environment().get_template("preview.html.j2").render(
        dashboard=result, panels=panels, start=start, end=end, pages=pages, run_id=run_id,
        links={"ALL": ALL}, base=base))


def render_preview(store: Store, run_id: str, start: datetime, end: datetime, out_dir: Path,
                   selected: Mapping[str, Sequence[str]] | None = None,
                   dashboards: Sequence[Dashboard] = DASHBOARDS,
                   ticker: str | None = None, copies: Sequence[Path] = (),
                   ranges: Mapping[str, tuple[datetime, datetime]] | None = None) -> list[Path]:
    """Write `<slug>.html` per dashboard (and index.html = the first) under `out_dir`.

    `copies`: more files to write the first page to (e.g. the demo's report.html), its links
    pointing into `out_dir`. `ranges`: another time range for some dashboards (by uid), e.g.
    processing time for pipeline health when documents were published long before.

    `selected` applies to every dashboard (default: All); `ticker` only to dashboards whose
    ticker variable picks one ticker (the drill-down; default: the ticker with most documents).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    busiest = ticker or _busiest_ticker(store, run_id, start, end)
    first: DashboardResult | None = None
    for spec in dashboards:
        chosen = {"run_id": [run_id], **{k: list(v) for k, v in (selected or {}).items()}}
        single = [v for v in spec.variables if v.name == "ticker" and not v.include_all]
        if single and busiest and "ticker" not in chosen:
            chosen["ticker"] = [busiest]
        begin, finish = (ranges or {}).get(spec.uid, (start, end))
        result = run_dashboard(store, spec, begin, finish, chosen)
        first = first or result
        path = out_dir / f"{spec.slug}.html"
        path.write_text(render_dashboard(result, begin, finish, dashboards, run_id),
                        encoding="utf-8")
        written.append(path)
    if written:
        (out_dir / "index.html").write_text(written[0].read_text(encoding="utf-8"),
                                            encoding="utf-8")
    for copy in copies if first else ():
        assert first is not None
        base = Path(os.path.relpath(out_dir, copy.parent)).as_posix() + "/"
        copy.write_text(render_dashboard(first, start, end, dashboards, run_id, base),
                        encoding="utf-8")
    return written
