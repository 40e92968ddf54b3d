"""Market mood: volume by sentiment, negative share and mean score, per-topic heatmap, top
movers, English and Chinese side by side; alerts as annotations. Reads sentiment_rollup only."""

from __future__ import annotations

from finsentry.dashboards.spec import (
    ALERT_ANNOTATION,
    MEAN_SCORE,
    NEGATIVE_SHARE,
    ROLLUP,
    Dashboard,
    Panel,
    cond,
    docs,
    rollup_filter,
    standard_variables,
)

FILTER = rollup_filter()

VOLUME = Panel(
    "Documents per minute by sentiment", "timeseries",
    f"SELECT\n    $__timeInterval(minute) AS time,\n    sentiment,\n"
    f"    {docs()} * 60 / $__interval_s AS docs_per_min\n"
    f"FROM {ROLLUP}\nWHERE {FILTER}\nGROUP BY time, sentiment\nORDER BY time, sentiment",
    (("time", "time"), ("sentiment", "string"), ("docs_per_min", "number")),
    width=12, unit="short", stack=True,
    description="Documents published per minute, stacked by sentiment; a document naming "
                "several tickers counts once unless tickers are chosen.")

MOOD = Panel(
    "Negative share and mean score", "timeseries",
    f"SELECT\n    $__timeInterval(minute) AS time,\n    {NEGATIVE_SHARE} AS negative_share,\n"
    f"    {MEAN_SCORE} AS mean_score\nFROM {ROLLUP}\nWHERE {FILTER}\nGROUP BY time\nORDER BY time",
    (("time", "time"), ("negative_share", "number"), ("mean_score", "number")),
    width=12, unit="none",
    description="Share of documents scored negative (0..1) and the mean score "
                "P(positive) - P(negative) (-1..1) per interval.")

HEATMAP = Panel(
    "Negative share per topic", "heatmap",
    f"SELECT\n    $__timeInterval(minute) AS time,\n    topic,\n"
    f"    {NEGATIVE_SHARE} AS negative_share\n"
    f"FROM {ROLLUP}\nWHERE {FILTER}\n    AND topic != ''\nGROUP BY time, topic\n"
    f"ORDER BY time, topic",
    (("time", "time"), ("topic", "string"), ("negative_share", "number")),
    width=24, height=9, unit="percentunit",
    description="One row per topic, darker = larger share of negative documents.")

# The previous period is the one just before the range, as long as the range.
_NOW = "minute >= $__fromTime"
_BEFORE = "minute < $__fromTime"
MOVERS = Panel(
    "Top movers", "table",
    "SELECT\n    ticker,\n"
    f"    sumIf(docs, sentiment = 'negative' AND {_NOW}) / greatest(1, sumIf(docs, {_NOW}))"
    " AS negative_share,\n"
    f"    sumIf(docs, sentiment = 'negative' AND {_BEFORE}) / greatest(1, sumIf(docs, {_BEFORE}))"
    " AS previous_share,\n"
    "    negative_share - previous_share AS change,\n"
    f"    sumIf(docs, {_NOW}) AS documents\n"
    f"FROM {ROLLUP}\nWHERE run_id = ${{run_id:sqlstring}}\n"
    "    AND toUInt32(minute) >= 2 * toUInt32($__fromTime) - toUInt32($__toTime)\n"
    "    AND minute <= $__toTime\n    AND ticker != ''\n"
    f"    AND {cond('ticker', 'ticker')}\n    AND {cond('topic', 'topic')}\n"
    f"    AND {cond('source', 'source')}\n    AND {cond('language', 'language')}\n"
    "GROUP BY ticker\nHAVING documents > 0\nORDER BY change DESC, documents DESC, ticker\n"
    "LIMIT 15",
    (("ticker", "string"), ("negative_share", "number"), ("previous_share", "number"),
     ("change", "number"), ("documents", "number")),
    width=24, height=8, unit="percentunit",
    links=(("ticker", "/d/finsentry-ticker?var-ticker=${__value.raw}&${__url_time_range}"),),
    description="Tickers whose negative share rose most against the previous period of the "
                "same length.")


def _language_panel(title: str, code: str) -> Panel:
    where = rollup_filter(language=False) + f"\n    AND language = '{code}'"
    return Panel(
        title, "timeseries",
        f"SELECT\n    $__timeInterval(minute) AS time,\n    {NEGATIVE_SHARE} AS negative_share,\n"
        f"    {MEAN_SCORE} AS mean_score\nFROM {ROLLUP}\nWHERE {where}\nGROUP BY time\n"
        "ORDER BY time",
        (("time", "time"), ("negative_share", "number"), ("mean_score", "number")),
        width=12, unit="none",
        description=f"Negative share and mean score of {title.split()[-1]} documents only.")


MARKET_MOOD = Dashboard(
    uid="finsentry-market", title="finsentry — market mood",
    description="Sentiment across the market from the per-minute rollup: volume, negative "
                "share, topics, movers, English and Chinese side by side; alerts as annotations.",
    panels=(VOLUME, MOOD, HEATMAP, MOVERS, _language_panel("Mood — English", "en"),
            _language_panel("Mood — Chinese", "zh")),
    variables=standard_variables(),
    annotations=(ALERT_ANNOTATION,),
)
