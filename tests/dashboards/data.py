"""Generated data for the dashboard tests: documents through ScoredSink (so the rollups fill the
way the workers fill them), crawl rows, worker batches, consumer lag, alerts and alert cycles.

i9 is rebuilding the alert engine in parallel: until its migration lands, `ensure_alert_tables`
creates `alerts` and `alert_cycles` with the agreed contract columns (replacing migration 3's
older `alerts` table), so the dashboards' alert SQL runs against the real shape.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import cast

from finsentry.records import Document, ScoredDocument, Sentiment, SentimentProbs, TickerMention
from finsentry.store import ScoredSink, Store

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START, END = NOW - timedelta(hours=6), NOW + timedelta(minutes=1)
TOPICS = ("earnings", "legal", "macro")
TICKERS = ("AAPL", "MSFT", "O'NEIL", "0700.HK")
SOURCES = ("rss-a", "rss-b", "sina")
def scored(i: int, *, minutes_ago: int, tickers: list[str], sentiment: str, topic: str,
           source: str, language: str, run_id: str = "live", novelty: float = 1.0,
           duplicate_of: str | None = None) -> ScoredDocument:
    document = Document.create(
        source=source, title=f"headline {i} <b>&", text=f"body of story {i}",
        url=f"https://news.example.com/{run_id}/{i}" if i % 7 else f"javascript:alert({i})",
        published_at=NOW - timedelta(minutes=minutes_ago), language=language,
        tickers=[TickerMention(symbol=t, relevance=1.0 - 0.2 * k) for k, t in enumerate(tickers)],
        novelty=novelty, duplicate_of=duplicate_of,
    )
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    probs[sentiment] = 0.8
    return ScoredDocument(
        document=document, sentiment=cast(Sentiment, sentiment),
        sentiment_probs=SentimentProbs(**probs), score=probs["positive"] - probs["negative"],
        topic=topic, topic_probs={topic: 0.9}, model_name="test-model", model_version="1",
        run_id=run_id)


def documents(n: int = 240, seed: int = 11) -> list[ScoredDocument]:
    """Spread over the last 5 hours; the last hour is more negative (a mover) for AAPL."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        minutes_ago = rng.randrange(1, 300)
        tickers = rng.sample(TICKERS, rng.choice([0, 1, 1, 2, 3]))
        negative_bias = 0.7 if minutes_ago < 60 and "AAPL" in tickers else 0.3
        sentiment = "negative" if rng.random() < negative_bias else rng.choice(
            ["neutral", "positive"])
        language = "zh" if "0700.HK" in tickers or rng.random() < 0.2 else "en"
        docs.append(scored(i, minutes_ago=minutes_ago, tickers=tickers, sentiment=sentiment,
                           topic=rng.choice(TOPICS), source=rng.choice(SOURCES),
                           language=language, novelty=round(rng.random(), 2)))
    docs.append(scored(900, minutes_ago=30, tickers=["TSLA"], sentiment="negative",
                       topic="legal", source="rss-a", language="en", run_id="replay-1"))
    return docs


def fill(store: Store) -> list[ScoredDocument]:
    """Everything every dashboard reads, for run 'live' (and a little for 'replay-1')."""
    docs = documents()
    assert ScoredSink(store).write(docs) == len(docs)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    store.insert("alerts", [
        {"run_id": "live", "alert_id": f"a{i}", "rule": rule, "group_key": key, "ticker": ticker,
         "topic": "legal", "source": "", "language": "en", "state": state,
         "event_time": NOW - timedelta(minutes=m), "fired_at": NOW - timedelta(minutes=m),
         "resolved_at": NOW - timedelta(minutes=m - 20) if state == "resolved" else epoch,
         "value": 0.8, "baseline": 0.3, "threshold": 0.6, "p_value": 0.01, "doc_count": 12,
         "message": f"negative spike on {key} <script>x</script>", "notified": 1,
         "silenced": int(i == 2), "version": 1}
        for i, (rule, key, ticker, state, m) in enumerate([
            ("negative_spike", "ticker=AAPL", "AAPL", "firing", 40),
            ("negative_spike", "ticker=MSFT", "MSFT", "resolved", 150),
            ("volume_burst", "topic=legal", "", "firing", 90),
        ])])
    store.insert("alert_cycles", [
        {"run_id": "live", "cycle_at": NOW - timedelta(minutes=m), "rule": "negative_spike",
         "keys": 4, "fired": int(m == 40), "resolved": 0, "notified": int(m == 40),
         "failed": 0, "seconds": 0.05 + m / 1000, "service_id": "alerts:1"}
        for m in range(5, 300, 15)])
    store.insert("ingest_runs", [
        {"source": source, "run_at": NOW - timedelta(minutes=m), "seconds": 1.5,
         "fetched": 20, "new": 12, "duplicate": 6, "near_duplicate": 1, "failed": int(m == 35),
         "dead_lettered": 0, "not_modified": 0, "ok": int(m != 35), "error": ""}
        for source in SOURCES for m in range(5, 300, 30)])
    store.insert("worker_batches", [
        {"worker_id": f"w{w}:1", "run_id": "live", "batch_at": NOW - timedelta(minutes=m),
         "topic": "raw", "docs_in": 64, "stored": 63, "dead_lettered": 1, "seconds": 0.4 + w,
         "inserts": 1, "rows_per_insert": 63}
        for w in range(2) for m in range(2, 300, 10)])
    store.insert("consumer_lag", [
        {"worker_id": "w0:1", "run_id": "live", "at": NOW - timedelta(minutes=m), "topic": "raw",
         "partition": p, "offset": 1000 + m, "high_watermark": 1100 + m + p * 10,
         "lag": 99 + p * 10}
        for p in range(3) for m in range(2, 300, 10)])
    return docs
