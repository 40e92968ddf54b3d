"""Ticker drill-down: one ticker's volume and sentiment (rollup), its most negative and most
novel documents with links, its topic mix and its alerts."""

from __future__ import annotations

from finsentry.dashboards.spec import (
    ALERT_ANNOTATION,
    MEAN_SCORE,
    ROLLUP,
    Dashboard,
    Panel,
    cond,
    rollup_filter,
    standard_variables,
)

FILTER = rollup_filter(ticker=False) + "\n    AND ticker = ${ticker:sqlstring}"

VOLUME = Panel(
    "Volume by sentiment", "timeseries",
    f"SELECT\n    $__timeInterval(minute) AS time,\n    sentiment,\n    sum(docs) AS documents\n"
    f"FROM {ROLLUP}\nWHERE {FILTER}\nGROUP BY time, sentiment\nORDER BY time, sentiment",
    (("time", "time"), ("sentiment", "string"), ("documents", "number")),
    width=12, stack=True, description="Documents naming the ticker per interval, by sentiment.")

SENTIMENT = Panel(
    "Sentiment", "timeseries",
    f"SELECT\n    $__timeInterval(minute) AS time,\n"
    f"    sumIf(docs, sentiment = 'negative') / sum(docs) AS negative_share,\n"
    f"    {MEAN_SCORE} AS mean_score\nFROM {ROLLUP}\nWHERE {FILTER}\nGROUP BY time\n"
    "ORDER BY time",
    (("time", "time"), ("negative_share", "number"), ("mean_score", "number")),
    width=12, unit="none", description="Negative share and mean score of the ticker.")

# Document tables: a filtered, limited read of the ticker's documents (not a time series).
_DOCS_WHERE = (
    "run_id = ${run_id:sqlstring}\n    AND has(tickers, ${ticker:sqlstring})\n"
    "    AND $__timeFilter(published_at)\n    AND duplicate_of = ''\n"
    f"    AND {cond('topic', 'topic')}\n    AND {cond('source', 'source')}\n"
    f"    AND {cond('language', 'language')}")
_DOC_COLUMNS = (("time", "time"), ("title", "string"), ("source", "string"),
                ("topic", "string"), ("score", "number"), ("novelty", "number"),
                ("url", "string"))
_DOC_SELECT = ("SELECT\n    published_at AS time,\n    title,\n    source,\n    topic,\n"
               "    score,\n    novelty,\n    url\nFROM scored_documents FINAL\n")
_LINK = (("title", "${__data.fields.url}"),)

NEGATIVE_DOCS = Panel(
    "Most negative documents", "table",
    f"{_DOC_SELECT}WHERE {_DOCS_WHERE}\nORDER BY p_negative DESC, published_at DESC, doc_id\n"
    "LIMIT 20",
    _DOC_COLUMNS, width=12, height=9, links=_LINK,
    description="The ticker's documents with the highest P(negative); titles link to the story.")

NOVEL_DOCS = Panel(
    "Most novel documents", "table",
    f"{_DOC_SELECT}WHERE {_DOCS_WHERE}\nORDER BY novelty DESC, published_at DESC, doc_id\n"
    "LIMIT 20",
    _DOC_COLUMNS, width=12, height=9, links=_LINK,
    description="The ticker's first-of-their-kind stories (novelty 1 = new story cluster).")

TOPIC_MIX = Panel(
    "Topic mix", "piechart",
    f"SELECT\n    if(topic = '', '(none)', topic) AS topic,\n    sum(docs) AS documents\n"
    f"FROM {ROLLUP}\nWHERE {FILTER}\nGROUP BY topic\nORDER BY documents DESC, topic",
    (("topic", "string"), ("documents", "number")),
    width=8, height=8, description="Documents naming the ticker, by topic.")

ALERTS = Panel(
    "Its alerts", "table",
    "SELECT\n    event_time AS fired,\n    rule,\n    state,\n    value,\n    threshold,\n"
    "    message\n"
    "FROM alerts FINAL\nWHERE run_id = ${run_id:sqlstring}\n    AND ticker = ${ticker:sqlstring}\n"
    "    AND $__timeFilter(event_time)\nORDER BY event_time DESC, alert_id\nLIMIT 50",
    (("fired", "time"), ("rule", "string"), ("state", "string"), ("value", "number"),
     ("threshold", "number"), ("message", "string")),
    width=16, height=8, description="Alerts raised for the ticker in the range.")

TICKER = Dashboard(
    uid="finsentry-ticker", title="finsentry — ticker drill-down",
    description="One ticker: volume and sentiment, its most negative and most novel documents, "
                "topic mix and alerts.",
    panels=(VOLUME, SENTIMENT, NEGATIVE_DOCS, NOVEL_DOCS, TOPIC_MIX, ALERTS),
    variables=standard_variables(single_ticker=True),
    annotations=(ALERT_ANNOTATION,),
)
