"""Scored documents for store tests (real records, built through the record contract)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from finsentry.records import (
    SENTIMENTS,
    Document,
    ScoredDocument,
    Sentiment,
    SentimentProbs,
    TickerMention,
)

HOSTILE_TEXTS = [
    "it's a \"quoted\" 'text'",
    "back\\slash \\' \\\\ end\\",
    "'; DROP TABLE scored_documents; --",
    "line one\nline two\r\n\ttabbed",
    "中文新闻：股价上涨",
    "emoji 📈🚀😀 and ZWJ 👨‍👩‍👧",
    "%(run_id)s %s %% {x} ${y} `z`",
    "nul\x00byte and bell\x07",
]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def scored(i: int, *, run_id: str = "run-1", text: str | None = None,
           tickers: tuple[str, ...] = ("AAPL",), topic: str = "earnings",
           minute: int | None = None) -> ScoredDocument:
    sentiment = cast(Sentiment, SENTIMENTS[i % 3])
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    probs[sentiment] = 0.8
    doc = Document.create(
        source="test-feed", url=f"https://news.example.com/a/{i}",
        title=f"headline {i}", text=text or f"body of story {i}",
        published_at=T0 + timedelta(minutes=i if minute is None else minute),
        tickers=[TickerMention(symbol=s, relevance=1.0 - 0.1 * k) for k, s in enumerate(tickers)],
        language="en", metadata={"feed": "t", "quote": "it's"},
    )
    return ScoredDocument(
        document=doc, sentiment=sentiment, sentiment_probs=SentimentProbs(**probs),
        score=probs["positive"] - probs["negative"], topic=topic,
        topic_probs={topic: 0.9} if topic else {}, model_name="test-model",
        model_version="0", run_id=run_id,
    )
