"""Alerts: firing now, the alert table (rule, key, fired, resolved, notified, silenced), alerts
per rule over time, the mood they fired against (with alert annotations) and engine cycles.

Reads `alerts FINAL` (small: one row per alert version; times are event time, the minute the
rule fired at, so a backtest run reads like live) and `alert_cycles`.
"""

from __future__ import annotations

from finsentry.dashboards.spec import (
    ALERT_ANNOTATION,
    NEGATIVE_SHARE,
    ROLLUP,
    Dashboard,
    Panel,
    cond,
    rollup_filter,
    standard_variables,
)

_ALERT_FILTER = (f"run_id = ${{run_id:sqlstring}}\n    AND {cond('topic', 'topic')}\n"
                 f"    AND {cond('ticker', 'ticker')}\n    AND {cond('source', 'source')}\n"
                 f"    AND {cond('language', 'language')}")

FIRING = Panel(
    "Firing now", "stat",
    f"SELECT count() AS firing\nFROM alerts FINAL\nWHERE {_ALERT_FILTER}\n"
    "    AND state = 'firing'",
    (("firing", "number"),), width=6, height=6,
    description="Alerts currently firing (latest version of each alert).")

TABLE = Panel(
    "Alerts", "table",
    "SELECT\n    event_time AS fired,\n    rule,\n    group_key AS key,\n    state,\n"
    "    if(resolved_at > toDateTime(0), formatDateTime(resolved_at, '%Y-%m-%d %H:%M:%S'), '')"
    " AS resolved,\n    notified,\n    silenced,\n    value,\n    threshold,\n    message\n"
    f"FROM alerts FINAL\nWHERE {_ALERT_FILTER}\n    AND $__timeFilter(event_time)\n"
    "ORDER BY event_time DESC, alert_id\nLIMIT 200",
    (("fired", "time"), ("rule", "string"), ("key", "string"), ("state", "string"),
     ("resolved", "string"), ("notified", "number"), ("silenced", "number"),
     ("value", "number"), ("threshold", "number"), ("message", "string")),
    width=18, height=10, description="Every alert fired in the range, newest first.")

PER_RULE = Panel(
    "Alerts per rule", "timeseries",
    "SELECT\n    $__timeInterval(event_time) AS time,\n    rule,\n    count() AS alerts\n"
    f"FROM alerts FINAL\nWHERE {_ALERT_FILTER}\n    AND $__timeFilter(event_time)\n"
    "GROUP BY time, rule\nORDER BY time, rule",
    (("time", "time"), ("rule", "string"), ("alerts", "number")),
    width=12, stack=True, description="Alerts fired per interval, by rule.")

MOOD = Panel(
    "Negative share (with alerts)", "timeseries",
    f"SELECT\n    $__timeInterval(minute) AS time,\n    {NEGATIVE_SHARE} AS negative_share\n"
    f"FROM {ROLLUP}\nWHERE {rollup_filter()}\nGROUP BY time\nORDER BY time",
    (("time", "time"), ("negative_share", "number")),
    width=12, unit="percentunit",
    description="The market's negative share; alerts appear as annotations.")

CYCLES = Panel(
    "Alert engine cycles", "timeseries",
    "SELECT\n    $__timeInterval(cycle_at) AS time,\n    max(seconds) AS max_seconds,\n"
    "    sum(failed) AS failed_notifications\nFROM alert_cycles\n"
    "WHERE run_id = ${run_id:sqlstring}\n    AND $__timeFilter(cycle_at)\n"
    "GROUP BY time\nORDER BY time",
    (("time", "time"), ("max_seconds", "number"), ("failed_notifications", "number")),
    width=24, height=7,
    description="Slowest rule-evaluation cycle per interval and notifications that failed.")

ALERTS = Dashboard(
    uid="finsentry-alerts", title="finsentry — alerts",
    description="Alerts as a table and over time, what is firing now, and the engine's cycles.",
    panels=(FIRING, TABLE, PER_RULE, MOOD, CYCLES),
    variables=standard_variables(),
    annotations=(ALERT_ANNOTATION,),
)
