"""The grafana-clickhouse-datasource macros and Grafana's variable interpolation, in Python.

Grafana cannot run here, so the preview and the tests expand a panel's SQL the way Grafana and
the plugin would before it reaches ClickHouse, in their order:
  1. `$__conditionalAll(condition, $var)` -> `1=1` when $var is All, else `condition`
     (the plugin frontend's applyConditionalAll, with its bracket-aware argument split);
  2. `${var:sqlstring}` -> each selected value quoted with `'` doubled, joined by commas; All
     means every option the variable's own query returned (Grafana's sqlstring format);
  3. the backend macros (pkg/macros): `$__timeFilter(col)` -> `col >= toDateTime(FROM) AND
     col <= toDateTime(TO)`, `$__timeInterval(col)` -> `toStartOfInterval(toDateTime(col),
     INTERVAL S second)`, `$__interval_s` -> `S`, `$__fromTime`/`$__toTime` -> `toDateTime(..)`.
Anything else starting with `$` left over is an error, so a dashboard cannot use a form this
expansion (and the escaping it documents) does not cover.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from finsentry.errors import DashboardError

ALL = "$__all"
CONDITIONAL_ALL = "$__conditionalAll("


class MacroError(DashboardError):
    """A dashboard query uses a macro or variable form the expansion does not know."""


def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Split a macro's arguments at depth-1 commas (as the plugin's getMacroArgs does)."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        char = sql[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i
        elif char == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise MacroError(f"unbalanced $__conditionalAll in {sql[:80]!r}")


def sqlstring(values: Sequence[str]) -> str:
    """Grafana's `:sqlstring` format: each value single-quoted, quotes doubled."""
    return ",".join("'" + value.replace("'", "''") + "'" for value in values)


def is_all(values: Sequence[str]) -> bool:
    return list(values) in ([], [ALL])


def expand(sql: str, selected: Mapping[str, Sequence[str]],
           options: Mapping[str, Sequence[str]], start: datetime, end: datetime,
           interval_s: int = 60) -> str:
    """`sql` as ClickHouse would receive it from Grafana for this range and selection."""
    while (at := sql.rfind(CONDITIONAL_ALL)) != -1:
        args, close = _macro_args(sql, at + len(CONDITIONAL_ALL) - 1)
        if len(args) != 2:
            raise MacroError(f"$__conditionalAll takes 2 arguments: {args}")
        name = re.search(r"\$\{?(\w+)", args[1].strip())
        if not name:
            raise MacroError(f"$__conditionalAll's second argument is not a variable: {args[1]!r}")
        value = selected.get(name.group(1), [])
        sql = sql[:at] + ("1=1" if is_all(value) else args[0]) + sql[close + 1:]

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in selected:
            raise MacroError(f"variable ${name} has no value")
        value = selected[name]
        return sqlstring(list(options.get(name, [])) if is_all(value) else list(value))

    sql = re.sub(r"\$\{(\w+):sqlstring\}", substitute, sql)
    frm, to = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^()]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})", sql)
    sql = re.sub(r"\$__timeInterval\(([^()]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)",
                 sql)
    sql = sql.replace("$__interval_s", str(interval_s))
    sql = sql.replace("$__fromTime", f"toDateTime({frm})").replace("$__toTime", f"toDateTime({to})")
    if "$" in sql:
        raise MacroError(f"unexpanded macro or variable left in: {sql[sql.index('$'):][:60]!r}")
    return sql


def interval_for(start: datetime, end: datetime, points: int = 120) -> int:
    """Grafana's auto interval, roughly: the range over ~`points` buckets, rounded to a nice
    step, never under the panels' 1m minimum."""
    span = max(60, int((end - start).total_seconds()))
    for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
        if span / step <= points:
            return step
    return 86400
