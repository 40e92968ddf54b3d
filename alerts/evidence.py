"""The evidence attached to an alert: top negative documents, a small chart, dashboard link.

Read when the alert is delivered (also on a retry after a restart) from the stored alert row, so
a re-send carries the same numbers. Documents come from scored_documents FINAL with the alert's
key and window; the chart is the rule's own metric series (evaluate.metric_series) around the
alert, drawn with matplotlib (Agg) into a PNG.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from finsentry.alerts.base import AlertEvent, Rule
from finsentry.alerts.evaluate import metric_series
from finsentry.alerts.mail import subject_line
from finsentry.alerts.notify import Example, Notice
from finsentry.sanitize import inert

if TYPE_CHECKING:
    from finsentry.config import AlertSettings
    from finsentry.store import Store

log = logging.getLogger("finsentry.alerts")

_EXAMPLES_SQL = """
SELECT title, url, source, published_at, score
FROM scored_documents FINAL
WHERE run_id = %(run_id)s
  AND published_at >= toDateTime(%(lo)s, 'UTC') AND published_at < toDateTime(%(hi)s, 'UTC')
  AND sentiment = 'negative'{scope}
ORDER BY score ASC, published_at DESC, doc_id ASC
LIMIT %(limit)s
"""
_DOC_FILTERS = {"ticker": " AND has(tickers, %(ticker)s)", "topic": " AND topic = %(topic)s",
                "source": " AND source = %(source)s", "language": " AND language = %(language)s"}


def event_from_row(row: dict[str, Any], event: str) -> AlertEvent:
    gk = str(row["group_key"])
    key = {} if gk in ("", "all") else dict(p.split("=", 1) for p in gk.split(","))
    resolved = event == "resolved"
    window = int((row["window_end"] - row["window_start"]).total_seconds() // 60) or 1
    return AlertEvent(
        rule=str(row["rule"]), alert_id=str(row["alert_id"]), group_key=gk, key=key,
        state="resolved" if resolved else "firing",
        event_time=row["resolved_at"] if resolved else row["event_time"],
        fired_time=row["event_time"], metric=str(row["metric"]), value=float(row["value"]),
        baseline=float(row["baseline"]), threshold=float(row["threshold"]),
        p_value=float("nan") if float(row["p_value"]) < 0 else float(row["p_value"]),
        doc_count=int(row["doc_count"]), window_minutes=window, severity=str(row["severity"]),
        kind=str(row["kind"]))


def examples(store: Store, run_id: str, e: AlertEvent, limit: int) -> list[Example]:
    if limit <= 0:
        return []
    scope = "".join(_DOC_FILTERS[k] for k in e.key if k in _DOC_FILTERS)
    hi = e.fired_time + timedelta(minutes=1)
    rows = store.query(_EXAMPLES_SQL.format(scope=scope), {
        "run_id": run_id, "lo": hi - timedelta(minutes=e.window_minutes), "hi": hi,
        "limit": int(limit), **e.key})
    return [Example(title=str(r["title"]), url=str(r["url"]), source=str(r["source"]),
                    published_at=r["published_at"], score=float(r["score"])) for r in rows]


def chart_png(store: Store, rule: Rule, run_id: str, e: AlertEvent) -> bytes | None:
    """value / baseline / threshold over 3 h before to 30 min after the alert (or now)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = min(e.event_time + timedelta(minutes=30), datetime.now(UTC))
    end = max(end, e.event_time + timedelta(minutes=1))
    series = metric_series(store, rule, run_id, e.fired_time - timedelta(hours=3), end,
                           keys=[e.group_key])
    if series.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=80)
    try:
        minutes = series["minute"].dt.tz_localize(None)
        ax.plot(minutes, series["value"], label=e.metric, color="#c03030", lw=1.2)
        if series["baseline"].notna().any():
            ax.plot(minutes, series["baseline"], label="baseline", color="#3060c0", lw=1)
        ax.axvline(e.fired_time.replace(tzinfo=None), color="#888", ls="--", lw=0.8)
        ax.legend(loc="upper left", fontsize=7, frameon=False)
        ax.tick_params(labelsize=7)
        ax.set_title(inert(f"{e.group_key} ({e.rule})", 80), fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def dashboard_url(settings: AlertSettings, e: AlertEvent, run_id: str) -> str:
    """The shipped dashboard for the key (the ticker drill-down when it has a ticker, else the
    market view), its variables set to the run and key, over 3 h before to 1 h after."""
    lo = int((e.fired_time - timedelta(hours=3)).timestamp() * 1000)
    hi = int((e.event_time + timedelta(hours=1)).timestamp() * 1000)
    uid = settings.grafana_ticker_dashboard if "ticker" in e.key else settings.grafana_dashboard
    query = urlencode({"var-run_id": run_id, **{f"var-{k}": v for k, v in e.key.items()},
                       "from": lo, "to": hi})
    return f"{settings.grafana_url.rstrip('/')}/d/{uid}?{query}"


def notice_for(store: Store, settings: AlertSettings, run_id: str, row: dict[str, Any],
               event: str, rule: Rule | None) -> Notice:
    e = event_from_row(row, event)
    notice = Notice(event=e, run_id=run_id, subject=subject_line(e),
                    dashboard_url=dashboard_url(settings, e, run_id))
    try:
        notice.examples = examples(store, run_id, e, settings.examples)
        if settings.chart and rule is not None:
            notice.chart_png = chart_png(store, rule, run_id, e)
    except Exception as exc:  # evidence is a nice-to-have: the alert still goes out
        log.warning("alert %s: evidence not attached: %s", e.alert_id, inert(str(exc), 300))
    return notice
