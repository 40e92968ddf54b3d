"""Scored-document streams for replay tests (real records through the record contract)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from finsentry.config import Settings
from finsentry.records import Document, ScoredDocument, Sentiment, SentimentProbs, TickerMention
from finsentry.store import Store

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
TICKERS = ("AAPL", "MSFT", "BAC")


def scored_stream(n: int = 120, *, run_id: str = "live", seed: int = 3, minutes: int = 60,
                  start: datetime = T0) -> list[ScoredDocument]:
    """`n` documents over `minutes`, three tickers, a repeated text under two ids and sources,
    and a negative burst for BAC in the second half."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        ticker = TICKERS[i % 3]
        at = start + timedelta(seconds=rng.randrange(minutes * 60))
        burst = ticker == "BAC" and at >= start + timedelta(minutes=minutes // 2)
        sentiment: Sentiment = "negative" if burst or rng.random() < 0.15 else (
            "positive" if rng.random() < 0.5 else "neutral")
        probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
        probs[sentiment] = 0.8
        text = "Shares move on the news" if i % 5 == 0 else f"story {i} about {ticker}"
        doc = Document.create(
            source=f"wire-{i % 2}", url=f"https://news.example.com/{ticker}/{i}",
            title=f"{ticker} headline {i}", text=text, published_at=at, language="en",
            tickers=[TickerMention(symbol=ticker, relevance=0.9)],
            metadata={"i": i, "quote": "it's"}, novelty=1.0 if i % 4 else 0.5)
        docs.append(ScoredDocument(
            document=doc, sentiment=sentiment, sentiment_probs=SentimentProbs(**probs),
            score=probs["positive"] - probs["negative"], topic="markets",
            topic_probs={"markets": 0.9}, model_name="test-model", model_version="1",
            run_id=run_id))
    return docs


def settings_for(store: Store, **sections: dict[str, Any]) -> Settings:
    """Settings pointing at the test's store, with section overrides."""
    data: dict[str, Any] = {"clickhouse": store.settings.model_dump()}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Settings.model_validate(data)


def checksums(store: Store, run_id: str) -> dict[str, tuple[int, int]]:
    """(rows, order-independent checksum) per run-keyed table for one run."""
    specs = {
        "scored_documents": "cityHash64(doc_id, title, text, source, sentiment, score, "
                            "toUInt32(published_at))",
        "sentiment_minute": "cityHash64(toUInt32(minute), topic, ticker, source, sentiment, "
                            "docs, score_sum)",
        "sentiment_rollup": "cityHash64(toUInt32(minute), language, topic, ticker, source, "
                            "sentiment, relevance_tenths, novelty_tenths, docs, docs_once)",
        "alerts": "cityHash64(alert_id, rule, window_end)",
    }
    out = {}
    for table, expr in specs.items():
        row = store.query(f"SELECT count() AS n, sum({expr}) AS h FROM {table} "
                          "WHERE run_id = %(run)s", {"run": run_id})[0]
        out[table] = (int(row["n"]), int(row["h"]))
    return out


def minute_aggregates(store: Store, run_id: str, table: str = "sentiment_rollup"
                      ) -> list[dict[str, Any]]:
    """The run's per-minute aggregate rows, summed per key (run id left out)."""
    if table == "sentiment_minute":
        keys = "minute, topic, ticker, source, sentiment"
        sums = "sum(docs) AS docs, round(sum(score_sum), 6) AS score_sum"
    else:
        keys = ("minute, language, topic, ticker, relevance_tenths, source, novelty_tenths, "
                "sentiment")
        sums = ("sum(docs) AS docs, sum(docs_once) AS docs_once, "
                "round(sum(score_sum), 6) AS score_sum, "
                "round(sum(p_negative_sum), 6) AS p_negative_sum")
    return store.query(f"SELECT {keys}, {sums} FROM {table} WHERE run_id = %(run)s "
                       f"GROUP BY {keys} ORDER BY {keys}", {"run": run_id})
