"""Dashboards as data: one set of panel definitions, two renderers.

A `Dashboard` is a list of `Panel`s (title, visualisation, the SQL Grafana's ClickHouse plugin
runs, the columns that SQL returns) plus template variables and annotations. `grafana.py` turns
it into Grafana JSON (grafana-foundation-sdk); `preview.py` runs the same SQL with the macros
expanded (`macros.py`) and draws the same panels as inline SVG and tables, without Grafana.

SQL conventions (checked by tests/dashboards): variables only as `${name:sqlstring}` or as the
second argument of `$__conditionalAll(cond, $name)`; time series read the per-minute rollups,
never `FINAL` over documents; tables name their columns exactly as `columns` lists them.
Time-series SQL is "long": a `time` column, string columns that name the series, number columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DATASOURCE_UID = "finsentry-clickhouse"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
FOLDER_UID = "finsentry"
FOLDER_TITLE = "finsentry"

Kind = Literal["timeseries", "table", "heatmap", "stat", "barchart", "piechart"]
ColumnKind = Literal["time", "number", "string"]


@dataclass(frozen=True)
class Panel:
    title: str
    kind: Kind
    sql: str
    columns: tuple[tuple[str, ColumnKind], ...]
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    # table column -> URL template (Grafana data-link syntax, e.g. "${__data.fields.url}")
    links: tuple[tuple[str, str], ...] = ()
    stack: bool = False

    @property
    def is_time_series(self) -> bool:
        return self.kind in ("timeseries", "heatmap")


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    sql: str
    multi: bool = True
    include_all: bool = True
    default: str | None = None  # None = All (or the first option)
    description: str = ""


@dataclass(frozen=True)
class Annotation:
    name: str
    sql: str  # columns: time, timeEnd, text, tags (the plugin's annotation contract)
    color: str = "red"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...]
    annotations: tuple[Annotation, ...] = ()
    time_from: str = "now-6h"
    refresh: str = "1m"
    tags: tuple[str, ...] = field(default=("finsentry",))

    @property
    def slug(self) -> str:
        return self.uid.removeprefix("finsentry-")


# -- shared SQL pieces -----------------------------------------------------------------------------

ROLLUP = "sentiment_rollup"


def cond(column_sql: str, var: str) -> str:
    """`column IN (selected)` unless the variable is All (the plugin's $__conditionalAll)."""
    return f"$__conditionalAll({column_sql} IN (${{{var}:sqlstring}}), ${var})"


def rollup_filter(*, topic: bool = True, ticker: bool = True, source: bool = True,
                  language: bool = True, time_col: str = "minute") -> str:
    parts = ["run_id = ${run_id:sqlstring}", f"$__timeFilter({time_col})"]
    if topic:
        parts.append(cond("topic", "topic"))
    if ticker:
        parts.append(cond("ticker", "ticker"))
    if source:
        parts.append(cond("source", "source"))
    if language:
        parts.append(cond("language", "language"))
    return "\n    AND ".join(parts)


def docs(where: str | None = None) -> str:
    """Documents counted once market-wide (docs_once), per ticker row when tickers are chosen.

    `$__conditionalAll(0, $ticker)` is `1=1` for All and `0` for a selection, so the ticker-row
    count `docs` is used exactly when the rows are filtered by ticker (docs_once would miss a
    document whose chosen ticker is not its first).
    """
    if where is None:
        return "if(NOT ($__conditionalAll(0, $ticker)), sum(docs), sum(docs_once))"
    return (f"if(NOT ($__conditionalAll(0, $ticker)), sumIf(docs, {where}), "
            f"sumIf(docs_once, {where}))")


NEGATIVE_SHARE = docs("sentiment = 'negative'") + " / " + docs()
MEAN_SCORE = "sum(score_sum) / sum(docs)"


def distinct_variable(name: str, label: str, column: str, *, multi: bool = True,
                      include_all: bool = True, default: str | None = None) -> Variable:
    sql = (f"SELECT DISTINCT {column} FROM {ROLLUP}\n"
           f"WHERE run_id = ${{run_id:sqlstring}} AND $__timeFilter(minute) AND {column} != ''\n"
           f"ORDER BY {column}")
    return Variable(name, label, sql, multi=multi, include_all=include_all, default=default,
                    description=f"{label.capitalize()}s seen in the run and time range.")


RUN_VARIABLE = Variable(
    "run_id", "run", f"SELECT DISTINCT run_id FROM {ROLLUP} ORDER BY run_id", multi=False,
    include_all=False, default="live",
    description="Which run's rows to show: 'live' is the streaming pipeline, others replays.")


def standard_variables(*, single_ticker: bool = False) -> tuple[Variable, ...]:
    """run id, topic, ticker, source, language: every dashboard has all five."""
    return (
        RUN_VARIABLE,
        distinct_variable("topic", "topic", "topic"),
        distinct_variable("ticker", "ticker", "ticker", multi=not single_ticker,
                          include_all=not single_ticker),
        distinct_variable("source", "source", "source"),
        distinct_variable("language", "language", "language"),
    )


ALERT_ANNOTATION = Annotation(
    "Alerts",
    "SELECT\n    event_time AS time,\n"
    "    if(resolved_at > toDateTime(0), resolved_at, event_time) AS timeEnd,\n"
    "    concat(rule, ' ', group_key, ': ', message) AS text,\n    rule AS tags\n"
    "FROM alerts FINAL\nWHERE run_id = ${run_id:sqlstring}\n    AND $__timeFilter(event_time)\n"
    "    AND " + cond("topic", "topic") + "\n    AND " + cond("ticker", "ticker") + "\n"
    "ORDER BY time",
)
