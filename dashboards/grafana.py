"""Renderer 1: a `Dashboard` spec as Grafana dashboard JSON, built with grafana-foundation-sdk.

Why the foundation SDK and not grafanalib: it is Grafana's own builder, generated from the same
schemas Grafana validates dashboards against (schemaVersion 41 with Grafana 11.6 models), typed
for mypy and maintained with Grafana's releases; grafanalib is community-maintained and lags the
schema. It has no ClickHouse query type, so `ClickHouseQuery` below implements the SDK's
`Dataquery` variant with the plugin's query fields (editorType/rawSql/format/queryType).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import heatmap, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig, VizLegendOptions
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from finsentry.dashboards.spec import (
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    Annotation,
    Dashboard,
    Panel,
    Variable,
)

DATASOURCE = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
FORMAT_TIME_SERIES, FORMAT_TABLE = 0, 1  # the plugin's Format enum
GRID_WIDTH = 24
ALL_VALUE = "$__all"


class ClickHouseQuery(cogvariants.Dataquery):
    """One SQL target of the grafana-clickhouse-datasource plugin."""

    def __init__(self, sql: str, time_series: bool, ref_id: str = "A") -> None:
        self.sql, self.time_series, self.ref_id = sql, time_series, ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "editorType": "sql",
            "queryType": "timeSeries" if self.time_series else "table",
            "format": FORMAT_TIME_SERIES if self.time_series else FORMAT_TABLE,
            "rawSql": self.sql,
        }


class ClickHouseQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, sql: str, time_series: bool) -> None:
        self._query = ClickHouseQuery(sql, time_series)

    def build(self) -> cogvariants.Dataquery:
        return self._query


class SqlAnnotationTarget(model.AnnotationTarget):
    """An annotation target carrying the plugin's SQL (the SDK's target is Grafana-only)."""

    def __init__(self, sql: str) -> None:
        super().__init__()
        self.sql = sql

    def to_json(self) -> dict[str, object]:
        return {"refId": "Anno", "editorType": "sql", "format": FORMAT_TABLE,
                "queryType": "table", "rawSql": self.sql}


class SqlAnnotationTargetBuilder(cogbuilder.Builder[model.AnnotationTarget]):
    def __init__(self, sql: str) -> None:
        self._target = SqlAnnotationTarget(sql)

    def build(self) -> model.AnnotationTarget:
        return self._target


def layout(panels: tuple[Panel, ...]) -> list[model.GridPos]:
    """Left to right, wrapping at 24 columns; a row is as tall as its tallest panel."""
    positions, x, y, row_h = [], 0, 0, 0
    for panel in panels:
        if x + panel.width > GRID_WIDTH:
            x, y, row_h = 0, y + row_h, 0
        positions.append(model.GridPos(h=panel.height, w=panel.width, x=x, y=y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return positions


def _panel_builder(panel: Panel) -> Any:
    if panel.kind == "timeseries":
        builder: Any = timeseries.Panel().fill_opacity(25 if panel.stack else 8).legend(
            VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM))
        if panel.stack:
            builder = builder.stacking(StackingConfig().mode(common.StackingMode.NORMAL))
        return builder
    if panel.kind == "heatmap":
        return heatmap.Panel().calculate(False)
    if panel.kind == "stat":
        return stat.Panel().color_mode(common.BigValueColorMode.VALUE)
    if panel.kind == "piechart":
        return piechart.Panel()
    return table.Panel()


def _links(panel: Panel) -> list[Any]:
    overrides = []
    for column, url in panel.links:
        link = {"title": f"open {column}", "url": url, "targetBlank": url.startswith("$")}
        overrides.append(dash.DashboardFieldConfigSourceOverrides().matcher(
            model.MatcherConfig(id_val="byName", options=column)).properties(
            [model.DynamicConfigValue(id_val="links", value=[link])]))
    return overrides


def _variable(variable: Variable) -> dash.QueryVariable:
    refresh = (model.VariableRefresh.ON_TIME_RANGE_CHANGED if "$__timeFilter" in variable.sql
               else model.VariableRefresh.ON_DASHBOARD_LOAD)
    built = (dash.QueryVariable(variable.name).label(variable.label)
            .description(variable.description)
            .datasource(DATASOURCE)
            .query({"refId": f"var-{variable.name}", "queryType": "sql",
                    "editorType": "sql", "rawSql": variable.sql})
            .refresh(refresh)
            .multi(variable.multi).include_all(variable.include_all)
            .allow_custom_value(False)
            .sort(model.VariableSort.ALPHABETICAL_ASC))
    if variable.default is not None:
        built = built.current(model.VariableOption(selected=True, text=variable.default,
                                                   value=variable.default))
    elif variable.include_all:
        built = built.current(model.VariableOption(selected=True, text=["All"],
                                                   value=[ALL_VALUE]))
    return built  # otherwise Grafana selects the first option


def _annotation(annotation: Annotation) -> dash.AnnotationQuery:
    return (dash.AnnotationQuery().name(annotation.name).datasource(DATASOURCE).enable(True)
            .icon_color(annotation.color).target(SqlAnnotationTargetBuilder(annotation.sql)))


def build(spec: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard (a plain dict, ready to dump)."""
    builder = (dash.Dashboard(spec.title).uid(spec.uid).description(spec.description)
               .tags(list(spec.tags)).timezone("utc").refresh(spec.refresh)
               .time(spec.time_from, "now").tooltip(model.DashboardCursorSync.CROSSHAIR)
               .readonly())
    for variable in spec.variables:
        builder = builder.with_variable(_variable(variable))
    for annotation in spec.annotations:
        builder = builder.annotation(_annotation(annotation))
    for number, (panel, pos) in enumerate(zip(spec.panels, layout(spec.panels), strict=True), 1):
        panel_builder = (_panel_builder(panel).id(number).title(panel.title)
                         .description(panel.description).datasource(DATASOURCE)
                         .grid_pos(pos).unit(panel.unit)
                         .with_target(ClickHouseQueryBuilder(panel.sql, panel.is_time_series)))
        if panel.is_time_series:
            panel_builder = panel_builder.interval("1m")
        if panel.links:
            panel_builder = panel_builder.overrides(_links(panel))
        builder = builder.with_panel(panel_builder)
    text = json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True)
    return dict(json.loads(text))


def dashboard_json(spec: Dashboard) -> str:
    """Stable text for the committed file (sorted keys, 2-space indent, final newline)."""
    return json.dumps(build(spec), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(out_dir: Path, specs: tuple[Dashboard, ...]) -> list[Path]:
    """Write every dashboard as `<slug>.json` under `out_dir`; removes stale finsentry files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        path = out_dir / f"{spec.slug}.json"
        path.write_text(dashboard_json(spec), encoding="utf-8")
        written.append(path)
    for stale in sorted(out_dir.glob("*.json")):
        if stale not in written:
            stale.unlink()
    return written
