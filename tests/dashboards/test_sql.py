"""Every panel's, variable's and annotation's SQL runs on a real ClickHouse (chdb) with the
finsentry schema and generated data, with the plugin's macros expanded for a real range and for
each value of each variable (All included), and returns the columns and types the panel expects.

Grafana cannot run here: `finsentry.dashboards.macros.expand` does what Grafana and the
grafana-clickhouse-datasource plugin do to a query before ClickHouse sees it (see its docstring).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from finsentry.dashboards.catalog import DASHBOARDS
from finsentry.dashboards.macros import ALL, expand, interval_for
from finsentry.dashboards.preview import run_dashboard, variable_options
from finsentry.dashboards.spec import ColumnKind, Dashboard, Panel
from finsentry.store import Store
from tests.dashboards.data import END, START

KINDS: dict[ColumnKind, tuple[type, ...]] = {"time": (datetime,), "number": (int, float),
                                             "string": (str,)}
IDS = [d.uid for d in DASHBOARDS]


def check_rows(panel: Panel, rows: list[dict[str, Any]]) -> None:
    expected = [name for name, _ in panel.columns]
    for row in rows:
        assert list(row) == expected, f"{panel.title}: columns {list(row)} != {expected}"
        for name, kind in panel.columns:
            value = row[name]
            assert isinstance(value, KINDS[kind]) and not isinstance(value, bool), \
                f"{panel.title}: {name}={value!r} is not {kind}"


def selections(store: Store, spec: Dashboard) -> list[dict[str, list[str]]]:
    """All defaults, then each value of each variable on its own (the others at default)."""
    base: dict[str, list[str]] = {"run_id": ["live"]}
    defaults = dict(base)
    options = variable_options(store, spec, defaults, START, END)
    found = [defaults]
    for variable in spec.variables:
        for value in options[variable.name]:
            found.append({**defaults, variable.name: [value]})
        if variable.multi and len(options[variable.name]) > 1:
            found.append({**defaults, variable.name: options[variable.name][:2]})
    return found


@pytest.mark.parametrize("spec", DASHBOARDS, ids=IDS)
def test_every_query_runs_for_every_variable_value(filled_store: Store, spec: Dashboard) -> None:
    cases = selections(filled_store, spec)
    assert len(cases) > 10
    for selected in cases:
        result = run_dashboard(filled_store, spec, START, END, selected)
        for panel in result.panels:
            assert panel.error is None, f"{panel.panel.title} with {selected}: {panel.error}"
            check_rows(panel.panel, panel.rows)
        if spec.annotations:
            for note in result.annotations:
                assert {"time", "timeEnd", "text", "tags"} <= set(note)


@pytest.mark.parametrize("spec", DASHBOARDS, ids=IDS)
def test_every_panel_has_data_with_defaults(filled_store: Store, spec: Dashboard) -> None:
    result = run_dashboard(filled_store, spec, START, END, {"run_id": ["live"], "ticker": ["AAPL"]}
                           if spec.uid == "finsentry-ticker" else {"run_id": ["live"]})
    empty = [p.panel.title for p in result.panels if not p.rows]
    assert not empty, f"panels without rows: {empty}"


def test_variables_list_what_is_stored(filled_store: Store) -> None:
    selected: dict[str, list[str]] = {"run_id": ["live"]}
    options = variable_options(filled_store, DASHBOARDS[0], selected, START, END)
    assert options["run_id"] == ["live", "replay-1"]
    assert options["topic"] == ["earnings", "legal", "macro"]
    assert options["ticker"] == sorted(["0700.HK", "AAPL", "MSFT", "O'NEIL"])
    assert options["language"] == ["en", "zh"]
    assert selected["topic"] == [ALL]


def rows_of(store: Store, spec: Dashboard, title: str,
            selected: dict[str, list[str]]) -> list[dict[str, Any]]:
    result = run_dashboard(store, spec, START, END, {"run_id": ["live"], **selected})
    (panel,) = [p for p in result.panels if p.panel.title == title]
    assert panel.error is None
    return panel.rows


def test_market_series_count_each_document_once(filled_store: Store) -> None:
    market = DASHBOARDS[0]
    truth = filled_store.query(
        "SELECT count() AS n FROM scored_documents FINAL WHERE run_id = 'live'")[0]["n"]
    rows = rows_of(filled_store, market, "Documents per minute by sentiment", {})
    # docs_per_min * interval / 60 sums back to the documents, each counted once
    interval = interval_for(START, END)
    total = sum(r["docs_per_min"] for r in rows) * interval / 60
    assert total == pytest.approx(truth)
    aapl = filled_store.query(
        "SELECT count() AS n FROM scored_documents FINAL WHERE run_id = 'live' "
        "AND has(tickers, 'AAPL')")[0]["n"]
    rows = rows_of(filled_store, market, "Documents per minute by sentiment", {"ticker": ["AAPL"]})
    assert sum(r["docs_per_min"] for r in rows) * interval / 60 == pytest.approx(aapl)


def test_top_movers_rank_the_rising_ticker_first(filled_store: Store) -> None:
    rows = rows_of(filled_store, DASHBOARDS[0], "Top movers", {})
    assert rows, "no movers"
    changes = [r["change"] for r in rows]
    assert changes == sorted(changes, reverse=True)


def test_quoted_and_hostile_values_stay_data(filled_store: Store) -> None:
    ticker = DASHBOARDS[1]
    rows = rows_of(filled_store, ticker, "Volume by sentiment", {"ticker": ["O'NEIL"]})
    assert rows
    hostile = run_dashboard(filled_store, DASHBOARDS[0], START, END,
                            {"run_id": ["live' OR '1'='1"], "ticker": ["x') OR (1=1"]})
    assert all(p.error is None and p.rows == [] for p in hostile.panels), \
        "a quote escaped its literal"


def test_replay_run_is_selectable(filled_store: Store) -> None:
    result = run_dashboard(filled_store, DASHBOARDS[1], START, END,
                           {"run_id": ["replay-1"], "ticker": ["TSLA"]})
    (volume,) = [p for p in result.panels if p.panel.title == "Volume by sentiment"]
    assert sum(r["documents"] for r in volume.rows) == 1


def test_time_series_never_read_documents_final() -> None:
    for spec in DASHBOARDS:
        for panel in spec.panels:
            if panel.is_time_series:
                assert "scored_documents" not in panel.sql, panel.title
        for variable in spec.variables:
            assert "scored_documents" not in variable.sql


def test_expansion_matches_the_plugin_forms() -> None:
    sql = ("SELECT $__timeInterval(minute) AS t FROM x WHERE $__timeFilter(minute) "
           "AND $__conditionalAll(topic IN (${topic:sqlstring}), $topic) "
           "AND minute >= $__fromTime AND c = $__interval_s")
    start, end = START, END
    frm, to = int(start.timestamp()), int(end.timestamp())
    out = expand(sql, {"topic": ["it's"]}, {}, start, end, 300)
    assert f"minute >= toDateTime({frm}) AND minute <= toDateTime({to})" in out
    assert "toStartOfInterval(toDateTime(minute), INTERVAL 300 second)" in out
    assert "topic IN ('it''s')" in out and "c = 300" in out
    assert "1=1" in expand(sql, {"topic": [ALL]}, {"topic": ["a"]}, start, end)
    assert not re.search(r"\$", out)
